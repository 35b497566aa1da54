"""LLVM IR that turns narrow formats (bfloat16, float8, float4, int4, int2) into their register
values and back.

A narrow float is computed in float32 and held in memory as the bit pattern ml_dtypes gives
it; encoding rounds to nearest even and follows ml_dtypes for what does not fit (NaN, or
infinity where the format has one, else the largest value for float4). A narrow int is held
in an i8 register, sign- or zero-extended, and stored as its low bits, as ml_dtypes lays it
out. The format's parameters are read from ml_dtypes, not written down here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import ml_dtypes
import numpy as np
from llvmlite import ir

from deepc.backends.llvm.types import ibits
from deepc.ir.types import NARROW_INTS

F32 = ir.FloatType()
I32 = ir.IntType(32)


@dataclass(frozen=True)
class FloatFormat:
    """A narrow float's layout and its special codes, as ml_dtypes encodes them."""

    bits: int
    mant: int
    bias: int
    max_code: int  # the largest finite magnitude
    overflow: tuple[int, int]  # codes for +/- values past the largest (inf, NaN or saturated)
    nan: tuple[int, int]
    negative_zero: bool
    table: tuple[float, ...]  # float32 value of every code (decoding all but bfloat16)


@cache
def float_format(dtype: str) -> FloatFormat:
    info = ml_dtypes.finfo(dtype)
    bits = 8 * np.dtype(dtype).itemsize if dtype != "float4_e2m1fn" else 4
    raw = np.uint16 if bits == 16 else np.uint8

    def enc(v: float) -> int:
        with np.errstate(all="ignore"):
            return int(np.array([v], np.float32).astype(dtype).view(raw)[0])

    table = () if bits == 16 else tuple(
        np.arange(256, dtype=np.uint8).view(dtype).astype(np.float32).tolist())
    return FloatFormat(bits, int(info.nmant), 1 - int(info.minexp), enc(float(info.max)),
                       (enc(np.inf), enc(-np.inf)), (enc(np.nan), enc(-np.nan)),
                       enc(-0.0) != 0, table)


def _k(like: ir.Type, ty: ir.Type, v: int | float) -> ir.Constant:
    """A constant of scalar type `ty`, splat to a vector where `like` is one."""
    if isinstance(like, ir.VectorType):
        return ir.Constant(ir.VectorType(ty, like.count), [ir.Constant(ty, v)] * like.count)
    return ir.Constant(ty, v)


def _as(like: ir.Type, ty: ir.Type) -> ir.Type:
    return ir.VectorType(ty, like.count) if isinstance(like, ir.VectorType) else ty


def encode_float(bld: ir.IRBuilder, x: ir.Value, dtype: str, roundeven: ir.Function
                 ) -> ir.Value:
    """float32 `x` (scalar or vector) -> the bit pattern of `dtype`, rounded to nearest even.

    `roundeven` is llvm.roundeven for x's type (values below the smallest normal are counted
    in steps of the smallest subnormal)."""
    t = x.type
    i32 = _as(t, I32)

    def k(v: int) -> ir.Constant:
        return _k(t, I32, v)

    if dtype == "float8_e8m0fnu":
        return _encode_e8m0(bld, bld.bitcast(x, i32), k)
    f = float_format(dtype)

    bits = bld.bitcast(x, i32)
    neg = bld.icmp_signed("<", bits, k(0))
    mag_bits = bld.and_(bits, k(0x7FFFFFFF))
    shift = 23 - f.mant
    # round the float32 mantissa to `mant` bits (ties to even), then rebias the exponent
    odd = bld.and_(bld.lshr(mag_bits, k(shift)), k(1))
    rounded = bld.add(bld.add(mag_bits, k((1 << (shift - 1)) - 1)), odd)
    code = bld.sub(bld.lshr(rounded, k(shift)), k((127 - f.bias) << f.mant))
    if f.bias != 127:  # below the format's smallest normal (float32's own subnormals: none)
        a = bld.bitcast(mag_bits, t)
        steps = bld.fmul(a, _k(t, F32, 2.0 ** (f.bias - 1 + f.mant)))
        sub = bld.fptoui(bld.call(roundeven, [steps]), i32)
        tiny = bld.fcmp_ordered("<", a, _k(t, F32, 2.0 ** (1 - f.bias)))
        code = bld.select(tiny, sub, code)
    sign = bld.select(neg, k(1 << (f.bits - 1)), k(0))
    if not f.negative_zero:
        sign = bld.select(bld.icmp_unsigned("==", code, k(0)), k(0), sign)
    out = bld.or_(code, sign)
    past = bld.icmp_unsigned(">", code, k(f.max_code))
    out = bld.select(past, bld.select(neg, k(f.overflow[1]), k(f.overflow[0])), out)
    nan = bld.icmp_unsigned(">", mag_bits, k(0x7F800000))
    out = bld.select(nan, bld.select(neg, k(f.nan[1]), k(f.nan[0])), out)
    return bld.trunc(out, _as(t, ir.IntType(8 if f.bits < 16 else 16)))


def _encode_e8m0(bld: ir.IRBuilder, bits: ir.Value, k: Any) -> ir.Value:
    """float32 bits -> a power of two's exponent (float8_e8m0fnu, no sign), rounding up
    where a fraction is left (onnx's default round_mode) except past the largest; NaN and
    infinity become NaN (0xFF). 2**-127, a float32 subnormal, is code 0 exactly (onnx's
    reference rounds it up), so that storing a decoded value keeps it."""
    exp = bld.and_(bld.lshr(bits, k(23)), k(0xFF))
    frac = bld.and_(bits, k(0x7FFFFF))
    up = bld.and_(bld.icmp_unsigned("!=", frac, k(0)), bld.icmp_unsigned("<", exp, k(0xFE)))
    up = bld.and_(up, bld.icmp_unsigned("!=", bld.and_(bits, k(0x7FFFFFFF)), k(0x400000)))
    exp = bld.select(up, bld.add(exp, k(1)), exp)
    return bld.trunc(exp, _as(bits.type, ir.IntType(8)))


def decode_float(bld: ir.IRBuilder, module: ir.Module, code: ir.Value, dtype: str) -> ir.Value:
    """A scalar bit pattern of `dtype` -> its float32 value (bfloat16 by a shift, the byte
    formats through a 256-entry table)."""
    if dtype == "bfloat16":
        wide = bld.zext(code, _as(code.type, I32))
        return bld.bitcast(bld.shl(wide, _k(code.type, I32, 16)), _as(code.type, F32))
    name = f"deepc.decode.{dtype}"
    if name in module.globals:
        table = module.globals[name]
    else:
        arr = ir.ArrayType(F32, 256)
        table = ir.GlobalVariable(module, arr, name)
        table.initializer = ir.Constant(arr, list(float_format(dtype).table))
        table.global_constant = True
        table.linkage = "private"
    index = bld.zext(code, ir.IntType(64))
    ptr = bld.gep(table, [ir.Constant(ir.IntType(64), 0), index],
                  source_etype=table.value_type)
    return bld.load(ptr, typ=F32)


def int_range(dtype: str) -> tuple[int, int]:
    n = ibits(dtype)
    return (-(1 << (n - 1)), (1 << (n - 1)) - 1) if dtype.startswith("int") else (0, (1 << n) - 1)


def decode_int(bld: ir.IRBuilder, byte: ir.Value, dtype: str) -> ir.Value:
    """A stored narrow int (its low bits in a byte) -> its value in an i8 register."""
    assert dtype in NARROW_INTS
    n = ibits(dtype)
    i8 = ir.IntType(8)
    if dtype.startswith("int"):
        return bld.ashr(bld.shl(byte, _k(byte.type, i8, 8 - n)), _k(byte.type, i8, 8 - n))
    return bld.and_(byte, _k(byte.type, i8, (1 << n) - 1))


def encode_int(bld: ir.IRBuilder, value: ir.Value, dtype: str) -> ir.Value:
    """An i8 register value -> the byte ml_dtypes stores (its low bits)."""
    return bld.and_(value, _k(value.type, ir.IntType(8), (1 << ibits(dtype)) - 1))

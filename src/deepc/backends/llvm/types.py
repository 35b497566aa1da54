"""Mapping of deepc dtypes to LLVM types and constants."""

from __future__ import annotations

import math

from llvmlite import ir

from deepc.ir.types import NARROW_FLOATS, NARROW_INTS, register_dtype

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()

_SCALAR: dict[str, ir.Type] = {
    "float16": ir.HalfType(), "float32": ir.FloatType(), "float64": ir.DoubleType(),
    "int8": I8, "int16": ir.IntType(16), "int32": I32, "int64": I64,
    "uint8": I8, "uint16": ir.IntType(16), "uint32": I32, "uint64": I64,
    "bool": I1,
}


def value_type(dtype: str) -> ir.Type:
    """The type of a value in registers (bool is i1; narrow formats are widened)."""
    try:
        return _SCALAR[register_dtype(dtype)]
    except KeyError:
        raise TypeError(f"the LLVM backend has no type for {dtype}") from None


def memory_type(dtype: str) -> ir.Type:
    """The type of an element in memory (bool is a byte, a narrow format its bit pattern)."""
    if dtype in NARROW_FLOATS or dtype in NARROW_INTS:
        return ir.IntType(8 * itemsize(dtype))
    return I8 if dtype == "bool" else value_type(dtype)


def is_float(dtype: str) -> bool:
    return register_dtype(dtype).startswith("float")


def is_signed(dtype: str) -> bool:
    return dtype.startswith("int")


_ITEMSIZE = {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4,
             "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1,
             **{d: 2 if d == "bfloat16" else 1 for d in (*NARROW_FLOATS, *NARROW_INTS)}}


def itemsize(dtype: str) -> int:
    try:
        return _ITEMSIZE[dtype]
    except KeyError:
        raise TypeError(f"the LLVM backend has no type for {dtype}") from None


def constant(dtype: str, value: float | int | bool) -> ir.Constant:
    ty = value_type(dtype)
    if is_float(dtype):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return ir.Constant(ty, v)
        return ir.Constant(ty, v)
    if dtype == "bool":
        return ir.Constant(I1, int(bool(value)))
    bits = ty.width
    return ir.Constant(ty, int(value) & ((1 << bits) - 1))


def vector(ty: ir.Type, lanes: int) -> ir.VectorType:
    return ir.VectorType(ty, lanes)


# -- constants and names for scalar or vector types -----------------------------------------
def align(dtype: str) -> int:
    return itemsize(dtype)


def type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{type_suffix(ty.element)}"
    s = str(ty)
    return {"float": "f32", "double": "f64", "half": "f16"}.get(s, s)


def elem(ty: ir.Type) -> ir.Type:
    return ty.element if isinstance(ty, ir.VectorType) else ty


def fconst(ty: ir.Type, v: float) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, v)] * ty.count)
    return ir.Constant(ty, v)


def fzero(ty: ir.Type) -> ir.Constant:
    return fconst(ty, 0.0)


def fone(ty: ir.Type) -> ir.Constant:
    return fconst(ty, 1.0)


def izero(ty: ir.Type) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [0] * ty.count)
    return ir.Constant(ty, 0)


def all_ones(ty: ir.Type) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [all_ones(ty.element)] * ty.count)
    return ir.Constant(ty, (1 << ty.width) - 1)


def fbits(dt: str) -> int:
    return {"float16": 16, "float32": 32, "float64": 64}[dt]


def ibits(dt: str) -> int:
    return 1 if dt == "bool" else int("".join(c for c in dt if c.isdigit()))

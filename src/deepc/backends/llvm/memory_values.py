"""How a value sits in memory against how the LLVM backend computes with it: the narrow float
and int formats (decoded to float32 / i8 on load, encoded on store), bools as bytes, and bit
casts between dtypes. A mixin of ExprEmitter (it uses the emitter's builder, module,
intrinsics, per-lane calls and casts)."""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from deepc.backends.llvm import narrow
from deepc.backends.llvm.types import (
    I1,
    constant,
    fconst,
    fzero,
    is_float,
    is_signed,
    izero,
    memory_type,
)
from deepc.ir.types import NARROW_FLOATS, NARROW_INTS, register_dtype


class MemoryValues:
    builder: ir.IRBuilder
    module: ir.Module
    intrinsic: Any
    per_lane: Any
    emit_cast: Any

    def narrow_int(self, x: ir.Value, src: str, dst: str) -> ir.Value:
        """Cast to int4/uint4/int2/uint2: a value out of the format's range becomes 0, as
        ml_dtypes (and so onnx's reference) has it; floats are truncated first."""
        bld = self.builder
        lo, hi = narrow.int_range(dst)
        if is_float(src):
            ok = bld.and_(bld.fcmp_ordered(">", x, fconst(x.type, lo - 1.0)),
                          bld.fcmp_ordered("<", x, fconst(x.type, hi + 1.0)))
            x = bld.select(ok, x, fzero(x.type))
        else:
            lt = bld.icmp_signed if is_signed(src) else bld.icmp_unsigned
            ok = lt("<=", x, self.splat(x.type, constant(src, hi)))
            if is_signed(src):
                ok = bld.and_(ok, bld.icmp_signed(">=", x, self.splat(x.type, constant(src, lo))))
            x = bld.select(ok, x, izero(x.type))
        return self.emit_cast(x, src, register_dtype(dst))

    def bitcast(self, x: ir.Value, src: str, dst: str) -> ir.Value:
        """The bits `src` keeps in memory, read as `dst`."""
        bits = self.to_memory(x, src)
        ty = memory_type(dst)
        ty = ir.VectorType(ty, bits.type.count) if isinstance(bits.type, ir.VectorType) else ty
        return self.from_memory(self.builder.bitcast(bits, ty), dst)

    def splat(self, like: ir.Type, c: ir.Constant) -> ir.Constant:
        if isinstance(like, ir.VectorType):
            return ir.Constant(like, [c] * like.count)
        return c

    def encode(self, x: ir.Value, dtype: str) -> ir.Value:
        return narrow.encode_float(self.builder, x, dtype,
                                   self.intrinsic("llvm.roundeven", x.type))

    def decode(self, code: ir.Value, dtype: str) -> ir.Value:
        if dtype == "bfloat16":
            return narrow.decode_float(self.builder, self.module, code, dtype)
        return self.per_lane(lambda c: narrow.decode_float(self.builder, self.module, c, dtype),
                             code)

    def from_memory(self, val: ir.Value, dtype: str) -> ir.Value:
        if dtype in NARROW_FLOATS:
            return self.decode(val, dtype)
        if dtype in NARROW_INTS:
            return narrow.decode_int(self.builder, val, dtype)
        if dtype != "bool":
            return val
        lanes = val.type.count if isinstance(val.type, ir.VectorType) else 0
        return self.builder.trunc(val, ir.VectorType(I1, lanes) if lanes else I1)

    def to_memory(self, val: ir.Value, dtype: str) -> ir.Value:
        if dtype in NARROW_FLOATS:
            return self.encode(val, dtype)
        if dtype in NARROW_INTS:
            return narrow.encode_int(self.builder, val, dtype)
        if dtype != "bool":
            return val
        lanes = val.type.count if isinstance(val.type, ir.VectorType) else 0
        return self.builder.zext(val, ir.VectorType(ir.IntType(8), lanes) if lanes
                                 else ir.IntType(8))

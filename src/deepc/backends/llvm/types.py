"""Mapping of deepc dtypes to LLVM types and constants."""

from __future__ import annotations

import math

from llvmlite import ir

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
    """The type of a value in registers (bool is i1)."""
    try:
        return _SCALAR[dtype]
    except KeyError:
        raise TypeError(f"the LLVM backend has no type for {dtype}") from None


def memory_type(dtype: str) -> ir.Type:
    """The type of an element in memory (bool is a byte)."""
    return I8 if dtype == "bool" else value_type(dtype)


def is_float(dtype: str) -> bool:
    return dtype.startswith("float")


def is_signed(dtype: str) -> bool:
    return dtype.startswith("int")


def itemsize(dtype: str) -> int:
    return {"float16": 2, "float32": 4, "float64": 8, "int8": 1, "int16": 2, "int32": 4,
            "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "bool": 1}[dtype]


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

"""Tensor types of the graph IR: a static shape and a numpy dtype name."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import ml_dtypes  # noqa: F401  (registers bfloat16, float8_*, int4, ... as numpy dtypes)
import numpy as np

# narrow formats held in memory as ml_dtypes lays them out (one byte an element, two for
# bfloat16) and computed in a wider register type
NARROW_FLOATS = ("bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
                 "float8_e5m2fnuz", "float4_e2m1fn", "float8_e8m0fnu")
NARROW_INTS = ("int4", "uint4", "int2", "uint2")
DTYPES = (
    "float16", "float32", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool", "string", *NARROW_FLOATS, *NARROW_INTS,
)
FLOAT_DTYPES = frozenset({"float16", "float32", "float64", *NARROW_FLOATS})
INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})


def register_dtype(name: str) -> str:
    """The dtype a narrow format is computed in (itself for the others)."""
    if name in NARROW_FLOATS:
        return "float32"
    if name in NARROW_INTS:
        return "int8" if name.startswith("int") else "uint8"
    return name


def dtype_name(dtype: object) -> str:
    """Canonical dtype name for a numpy dtype, a type or a name."""
    if isinstance(dtype, str) and dtype in DTYPES:
        return dtype
    dt = np.dtype(dtype)  # type: ignore[call-overload]
    if dt.kind in "OUS":
        return "string"
    return dt.name


def np_dtype(name: str) -> np.dtype:
    if name == "string":
        return np.dtype(object)
    return np.dtype(name)


def itemsize(name: str) -> int:
    return 8 if name == "string" else np.dtype(name).itemsize


@dataclass(frozen=True)
class TensorType:
    """A tensor's static shape and element type. Scalars have shape ()."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * itemsize(self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{'x'.join(map(str, self.shape))}]"

    @staticmethod
    def of(array: np.ndarray) -> TensorType:
        return TensorType(tuple(array.shape), dtype_name(array.dtype))

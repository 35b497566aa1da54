"""Tensor types of the graph IR: a static shape and a numpy dtype name."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

DTYPES = (
    "float16", "bfloat16", "float32", "float64",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool", "string",
)
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})


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
    if name == "bfloat16":
        raise TypeError("bfloat16 has no numpy dtype")
    return np.dtype(name)


def itemsize(name: str) -> int:
    return 2 if name == "bfloat16" else 8 if name == "string" else np.dtype(name).itemsize


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

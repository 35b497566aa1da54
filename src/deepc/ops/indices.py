"""ONNX's index conventions, shared by the indexing ops: index dtypes, normalized axes, and
negative indices wrapped into range — in numpy for the references, as expressions for the
computes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.types import TensorType

INDEX_DTYPES = ("int32", "int64")


def input_types(ins: Sequence[TensorType | None], n: int) -> list[TensorType]:
    """The first n input types, all present."""
    got = list(ins[:n])
    if len(got) < n or any(t is None for t in got):
        raise ValueError(f"expects {n} inputs")
    return got  # type: ignore[return-value]


def check_indices(ty: TensorType, what: str = "indices") -> None:
    if ty.dtype not in INDEX_DTYPES:
        raise ValueError(f"{what} must be int32 or int64, not {ty.dtype}")


def check_axis(axis: int, rank: int) -> int:
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} is not a normalized axis of a rank-{rank} tensor")
    return axis


def wrap_indices(idx: np.ndarray, extent: int) -> np.ndarray:
    """Indices in [-extent, extent) as non-negative int64; anything else is an IndexError."""
    idx = np.asarray(idx).astype(np.int64, copy=False)
    if idx.size and (idx.min() < -extent or idx.max() >= extent):
        bad = idx[(idx < -extent) | (idx >= extent)].reshape(-1)[0]
        raise IndexError(f"index {bad} is out of range for an axis of size {extent}")
    return np.where(idx < 0, idx + extent, idx)


def element_index(idx: np.ndarray, axis: int, extent: int) -> tuple[np.ndarray, ...]:
    """The numpy index that reads `data[i_0, .., idx[i], .., i_r]` for every position i."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = wrap_indices(idx, extent)
    return tuple(grid)


def wrap_index(raw: E.Expr, extent: int) -> E.Expr:
    """An index value as int64 (a float one truncates) with ONNX's convention: [-extent, 0)
    counts from the end."""
    i = raw.astype("int64")
    return E.select(i < 0, i + extent, i)


def clamped_index(raw: E.Expr, extent: int) -> E.Expr:
    """wrap_index clamped into [0, extent): an invalid index (the reference raises) reads an
    element at the edge, never outside the buffer."""
    return E.minimum(E.maximum(wrap_index(raw, extent), 0), extent - 1)


def in_range(raw: E.Expr, extent: int) -> E.Expr:
    """Whether an index value is valid for an axis of `extent`: in [-extent, extent)."""
    return (raw.astype("int64") >= -extent) & (raw.astype("int64") < extent)

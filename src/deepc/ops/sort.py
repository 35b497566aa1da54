"""Sorting ops: topk (values and int64 indices of the k largest or smallest along an axis)."""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil, log2

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op


def stable_order(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Positions that sort `x` along `axis`; equal values keep their order (lower index first)."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # sorting the reversed axis ascending and reading the result backwards gives descending
    # values with equal ones in ascending original position, for any dtype (no negation)
    n = x.shape[axis]
    return n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)


topk = Op("topk", FusionKind.OPAQUE,
          doc="values and int64 indices of the attrs['k'] largest (or smallest) entries along "
              "attrs['axis'], ties broken by lower index")


@topk.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> tuple[TensorType, TensorType]:
    x = ins[0]
    assert x is not None
    axis, k = int(attrs["axis"]), int(attrs["k"])
    if not 0 <= axis < x.rank:
        raise ValueError(f"axis {axis} is not a normalized axis of rank {x.rank}")
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"k={k} is outside [0, {x.shape[axis]}] (the size of axis {axis})")
    shape = (*x.shape[:axis], k, *x.shape[axis + 1:])
    return TensorType(shape, x.dtype), TensorType(shape, "int64")


@topk.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> tuple[np.ndarray, np.ndarray]:
    # unsorted output (attrs['sorted'] == 0) may come in any order: sorted order is one
    x, axis, k = ins[0], int(attrs["axis"]), int(attrs["k"])
    order = stable_order(x, axis, descending=bool(attrs["largest"]))
    idx = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


@topk.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x = ins[0]
    assert x is not None
    n = x.shape[int(attrs["axis"])]
    return x.size * max(ceil(log2(max(n, 2))), 1)  # comparisons of a sort along the axis

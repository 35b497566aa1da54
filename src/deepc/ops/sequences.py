"""Ops that move elements along a sequence axis by per-batch lengths or positions held in a
tensor: `reverse_sequence` and `tensor_scatter` (a KV-cache write). Both are gathers whose
source index is computed from those values, so they stay injective and fuse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

# -- reverse_sequence -----------------------------------------------------------------------
reverse_sequence = Op(
    "reverse_sequence", FusionKind.INJECTIVE,
    doc="reverse the first lengths[b] elements along attrs['time_axis'] of each batch entry b "
        "(along attrs['batch_axis']); the rest are copied")


@reverse_sequence.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, lengths = ins[0], ins[1]
    assert x is not None and lengths is not None
    batch, time = int(attrs["batch_axis"]), int(attrs["time_axis"])
    if {batch, time} != {0, 1} or x.rank < 2 or lengths.shape != (x.shape[batch],):
        raise ValueError(f"needs batch and time axes 0 and 1 and lengths[{x.shape[batch]}], "
                         f"got {x}, {lengths}")
    return x


@reverse_sequence.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, lengths = ins[0], ins[1]
    batch, time = int(attrs["batch_axis"]), int(attrs["time_axis"])
    out = x.copy()
    for b, n in enumerate(lengths):
        src = [slice(None)] * x.ndim
        src[batch], src[time] = b, slice(int(n) - 1, None, -1) if n > 0 else slice(0, 0)
        dst = list(src)
        dst[time] = slice(0, int(n))
        out[tuple(dst)] = x[tuple(src)]
    return out


@reverse_sequence.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, lengths = ins[0], ins[1]
    batch, time = int(attrs["batch_axis"]), int(attrs["time_axis"])

    def body(*o: E.Var) -> E.Expr:
        n = lengths[(o[batch],)].astype("int64")
        t = o[time]
        src = list(o)
        src[time] = E.select(t < n, n - 1 - t, t)
        return x[tuple(src)]

    return compute(x.shape, body, "reverse_sequence")


# -- tensor_scatter -------------------------------------------------------------------------
tensor_scatter = Op(
    "tensor_scatter", FusionKind.INJECTIVE,
    doc="past[..., s, ...] with update[..., j, ...] written at s = positions[b] + j along "
        "attrs['axis'] (b the index on axis 0; modulo the axis length when attrs['circular'])")


@tensor_scatter.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    past, update = ins[0], ins[1]
    assert past is not None and update is not None
    axis = int(attrs["axis"])
    fits = past.rank == update.rank and 0 < axis < past.rank and all(
        u == p if k != axis else u <= p for k, (p, u) in enumerate(zip(past.shape, update.shape)))
    if not fits or past.dtype != update.dtype:
        raise ValueError(f"update {update} does not fit cache {past} along axis {axis}")
    return past


def _offset(s: Any, start: Any, length: int, circular: bool) -> Any:
    off = s - start
    return ((off % length) + length) % length if circular else off


@tensor_scatter.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    past, update = ins[0], ins[1]
    assert past is not None and update is not None
    positions = ins[2] if len(ins) > 2 and ins[2] is not None else np.zeros(past.shape[0], int)
    axis, circular = int(attrs["axis"]), bool(attrs["circular"])
    out = past.copy()
    for b, start in enumerate(positions):
        for j in range(update.shape[axis]):
            s = int(start) + j
            s = s % past.shape[axis] if circular else s
            dst = (b, *(slice(None),) * (axis - 1), s)
            out[dst] = update[(b, *(slice(None),) * (axis - 1), j)]
    return out


@tensor_scatter.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    past, update = ins[0], ins[1]
    positions = ins[2] if len(ins) > 2 else None
    axis, circular = int(attrs["axis"]), bool(attrs["circular"])
    length, count = past.shape[axis], update.shape[axis]

    def body(*o: E.Var) -> E.Expr:
        start = E.as_expr(0) if positions is None else positions[(o[0],)].astype("int64")
        off = _offset(o[axis].astype("int64"), start, length, circular)
        inside = off < count if circular else (off >= 0) & (off < count)
        at = E.minimum(E.maximum(off, E.as_expr(0, off)), E.as_expr(count - 1, off))
        src = (*o[:axis], at, *o[axis + 1:])
        return E.select(inside, update[src], past[o])

    return compute(past.shape, body, "tensor_scatter")

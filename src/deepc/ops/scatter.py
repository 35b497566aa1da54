"""Scatters: scatter_elements and scatter_nd, copies of data with updates written (or reduced)
at indexed positions, as hand-written loops that visit the updates in order."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.loop import Buffer, IfThenElse, Stmt, Store, seq
from deepc.ir.tensor import Tensor, extern
from deepc.ir.types import TensorType
from deepc.ops.indices import (
    check_axis,
    check_indices,
    element_index,
    in_range,
    input_types,
    wrap_index,
    wrap_indices,
)
from deepc.ops.loop_nests import loop_nest, row_loops
from deepc.ops.registry import FusionKind, Op

SCATTER_REDUCTIONS = {
    "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
}


def _scatter(out: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray,
             reduction: str) -> np.ndarray:
    if reduction == "none":
        # duplicate targets are undefined in ONNX; numpy, like onnxruntime, keeps the last
        out[where] = updates
    else:
        SCATTER_REDUCTIONS[reduction].at(out, where, updates)
    return out


def _check_reduction(attrs: Attrs) -> None:
    reduction = attrs.get("reduction", "none")
    if reduction != "none" and reduction not in SCATTER_REDUCTIONS:
        raise ValueError(f"unknown scatter reduction {reduction!r}")


_COMBINE: dict[str, Callable[[E.Expr, E.Expr], E.Expr]] = {
    "none": lambda old, new: new, "add": lambda a, b: a + b, "mul": lambda a, b: a * b,
    "max": E.maximum, "min": E.minimum,
}


def _scatter_compute(name: str, ins: Sequence[Any], attrs: Attrs, lead: int,
                     where: Callable[[Buffer, tuple[E.Var, ...]], dict[int, E.Expr]]) -> Tensor:
    """Copy data, then visit updates in order: the last duplicate wins (or they reduce), as
    in the reference. Update u (its `lead` leading indices) goes where the dims in
    `where(indices, u)` take those raw index values and the others u's; its trailing dims
    are a slice written whole. Updates at invalid indices (the reference raises) are skipped."""
    data = ins[0]
    combine = _COMBINE[str(attrs.get("reduction", "none"))]

    def build(bufs: Sequence[Buffer], out_bufs: Sequence[Buffer]) -> Stmt:
        (src, idx, upd), (out,) = bufs, out_bufs

        def update(u: tuple[E.Var, ...]) -> Stmt:
            raws = where(idx, u)
            target = [wrap_index(raws[d], src.shape[d]) if d in raws else u[d]
                      for d in range(len(src.shape) - len(upd.shape) + lead)]
            valid = reduce(operator.and_, (in_range(r, src.shape[d]) for d, r in raws.items()))

            def store(s: tuple[E.Var, ...]) -> Stmt:
                return Store(out, (*target, *s), combine(out[(*target, *s)], upd[(*u, *s)]))

            return IfThenElse(valid, loop_nest(upd.shape[lead:], f"{name}_s", store))

        copy = loop_nest(src.shape, f"{name}_c", lambda i: Store(out, i, src[i]))
        return seq(copy, row_loops((), f"{name}_once", lambda _: loop_nest(
            upd.shape[:lead], f"{name}_u", update)))

    return extern(name, ins[:3], [(data.shape, data.dtype)], build)[0]


# -- scatter_elements -------------------------------------------------------------------------
scatter_elements = Op("scatter_elements", FusionKind.OPAQUE,
                      doc="copy of data with updates written (or reduced) at gather_elements "
                          "positions; attrs axis, reduction none|add|mul|max|min")


@scatter_elements.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx, upd = input_types(ins, 3)
    check_indices(idx)
    _check_reduction(attrs)
    axis = check_axis(int(attrs["axis"]), data.rank)
    if idx.rank != data.rank or upd.shape != idx.shape:
        raise ValueError("indices and updates must have data's rank and one shape")
    if any(i > d for k, (i, d) in enumerate(zip(idx.shape, data.shape)) if k != axis):
        raise ValueError("indices are larger than data outside the scatter axis")
    if upd.dtype != data.dtype:
        raise ValueError(f"updates are {upd.dtype}, data {data.dtype}")
    return data


@scatter_elements.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx, upd = ins[0], ins[1], ins[2]
    axis = int(attrs["axis"])
    where = element_index(idx, axis, data.shape[axis])
    return _scatter(data.copy(), where, upd, str(attrs.get("reduction", "none")))


@scatter_elements.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    axis = int(attrs["axis"])
    return _scatter_compute("scatter_elements", ins, attrs, ins[1].rank,
                            lambda idx, u: {axis: idx[u]})


# -- scatter_nd -------------------------------------------------------------------------------
scatter_nd = Op("scatter_nd", FusionKind.OPAQUE,
                doc="copy of data with update slices written (or reduced) at k-d indices")


@scatter_nd.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx, upd = input_types(ins, 3)
    check_indices(idx)
    _check_reduction(attrs)
    if idx.rank < 1 or not 1 <= idx.shape[-1] <= data.rank:
        raise ValueError(f"indices' last dimension must be in [1, {data.rank}]")
    want = idx.shape[:-1] + data.shape[idx.shape[-1]:]
    if upd.shape != want:
        raise ValueError(f"updates have shape {upd.shape}, expected {want}")
    if upd.dtype != data.dtype:
        raise ValueError(f"updates are {upd.dtype}, data {data.dtype}")
    return data


@scatter_nd.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx, upd = ins[0], ins[1], ins[2]
    where = tuple(wrap_indices(idx[..., j], data.shape[j]) for j in range(idx.shape[-1]))
    return _scatter(data.copy(), where, upd, str(attrs.get("reduction", "none")))


@scatter_nd.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    q, k = ins[1].rank, ins[1].shape[-1]
    return _scatter_compute("scatter_nd", ins, attrs, q - 1,
                            lambda idx, u: {j: idx[(*u, j)] for j in range(k)})

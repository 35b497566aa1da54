"""Sorting ops: topk (values and int64 indices of the k largest or smallest along an axis)."""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil, log2
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.loop import Allocate, Buffer, For, ForKind, IfThenElse, Stmt, Store, seq
from deepc.ir.tensor import Tensor, extern
from deepc.ir.types import TensorType
from deepc.ops.loop_nests import row_loops
from deepc.ops.registry import FusionKind, Op

# the k best of a row are kept in registers/stack up to this k; larger ones go to the heap
LOCAL_K = 1024


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


@topk.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> list[Tensor]:
    """Per row, one pass over the axis keeps the k best so far, sorted, in a k-entry buffer:
    an element better than the last one held is inserted by moving the worse entries down
    (insertion sort, O(n) compares plus O(k) per insertion). `better` is strict, so an equal
    later element never passes an earlier one: ties keep the lower index first."""
    x = ins[0]
    axis, k, largest = int(attrs["axis"]), int(attrs["k"]), bool(attrs["largest"])
    n, rows = x.shape[axis], (*x.shape[:axis], *x.shape[axis + 1:])

    def better(a: E.Expr, b: E.Expr) -> E.Expr:
        """Strict order; NaN sorts above every number (as in numpy), equal to itself."""
        hi, lo = (a, b) if largest else (b, a)
        if not x.dtype.startswith("float"):
            return hi > lo
        return (hi > lo) | (E.call("isnan", hi) & ~E.call("isnan", lo))

    def build(bufs: Sequence[Buffer], out_bufs: Sequence[Buffer]) -> Stmt:
        (src,), (values, indices) = bufs, out_bufs
        scope = "local" if k <= LOCAL_K else "global"
        best = Buffer(f"{values.name}_best", (k,), x.dtype, scope)
        where = Buffer(f"{values.name}_where", (k,), "int64", scope)
        t, jj, jo = E.Var("topk_t"), E.Var("topk_j"), E.Var("topk_o")
        j = (k - 1) - jj  # last entry first, so each moves down before it is overwritten

        def row(r: tuple[E.Var, ...]) -> Stmt:
            def at(p: E.Expr) -> tuple[E.Expr, ...]:
                return (*r[:axis], p, *r[axis:])

            v, held = src[at(t)], E.minimum(t, k)
            # entries j >= held are empty: never read them
            moves = E.select((j >= 1) & (j <= held), better(v, best[j - 1]), False)
            lands = E.select(j < held, better(v, best[j]), j.eq(held))
            step = IfThenElse(moves, seq(Store(best, (j,), best[j - 1]),
                                         Store(where, (j,), where[j - 1])),
                              IfThenElse(lands, seq(Store(best, (j,), v), Store(where, (j,), t))))
            enters = E.select(t < k, True, better(v, best[k - 1]))
            scan = For(t, n, ForKind.SERIAL, IfThenElse(enters, For(jj, k, ForKind.SERIAL, step)))
            emit = For(jo, k, ForKind.SERIAL, seq(Store(values, at(jo), best[jo]),
                                                  Store(indices, at(jo), where[jo])))
            return Allocate(best, Allocate(where, seq(scan, emit)))

        return row_loops(rows, "topk_r", row) if k else seq()

    return extern("topk", [x], [(outs[0].shape, x.dtype), (outs[1].shape, "int64")], build)


@topk.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x = ins[0]
    assert x is not None
    n = x.shape[int(attrs["axis"])]
    return x.size * max(ceil(log2(max(n, 2))), 1)  # comparisons of a sort along the axis

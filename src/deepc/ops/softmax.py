"""Normalized exponentials along one axis: `softmax`, `log_softmax` and `hardmax`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rmax, rmin, rsum
from deepc.ir.types import TensorType
from deepc.ops.common import normalize_axis
from deepc.ops.conv import acc_dtype
from deepc.ops.registry import FusionKind, Op


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    """1 at the first maximum along the axis, 0 elsewhere."""
    out = np.zeros_like(x)
    np.put_along_axis(out, np.expand_dims(x.argmax(axis=axis), axis), 1, axis=axis)
    return out


Index = tuple[E.Expr, ...]


def stage_along(x: Tensor, axis: int, name: str, fn: Callable[[Index, E.Expr], E.Expr],
                tag: str = "") -> Tensor:
    """One value per row along `axis` (x's shape without that axis): fn(x's index of the row
    with the reduction variable at `axis`, that variable)."""
    r = reduce_axis(x.shape[axis], f"{name}.r")
    shape = x.shape[:axis] + x.shape[axis + 1:]
    return compute(shape, lambda *i: fn((*i[:axis], r, *i[axis:]), r), name, tag=tag)


def row_of(i: Index, axis: int) -> Index:
    """The row of x[i]: its index without `axis`."""
    return (*i[:axis], *i[axis + 1:])


def _shifted_exp_sum(x: Tensor, axis: int, acc: str, name: str
                     ) -> tuple[Callable[[Index], E.Expr], Tensor]:
    """(x - row max) as a function of the index, and the row sums of its exponential."""
    top = stage_along(x, axis, f"{name}_max", lambda i, r: rmax(x[i], r))

    def shifted(i: Index) -> E.Expr:
        return x[i].astype(acc) - top[row_of(i, axis)].astype(acc)

    return shifted, stage_along(x, axis, f"{name}_sum",
                                 lambda i, r: rsum(E.call("exp", shifted(i)), r))


def _softmax_te(x: Tensor, axis: int, acc: str) -> Tensor:
    shifted, total = _shifted_exp_sum(x, axis, acc, "softmax")
    return compute(x.shape, lambda *i: (E.call("exp", shifted(i)) / total[row_of(i, axis)]
                                        ).astype(x.dtype), "softmax")


def _log_softmax_te(x: Tensor, axis: int, acc: str) -> Tensor:
    shifted, total = _shifted_exp_sum(x, axis, acc, "log_softmax")
    return compute(x.shape, lambda *i: (shifted(i) - E.call("log", total[row_of(i, axis)])
                                        ).astype(x.dtype), "log_softmax")


def _hardmax_te(x: Tensor, axis: int, acc: str) -> Tensor:
    """The first position holding the row maximum gets 1."""
    top = stage_along(x, axis, "hardmax_max", lambda i, r: rmax(x[i], r))
    first = stage_along(x, axis, "hardmax_first", lambda i, r: rmin(
        E.select(x[i].eq(top[row_of(i, axis)]), r, E.as_expr(x.shape[axis])), r))
    one, zero = E.const(1, x.dtype), E.const(0, x.dtype)
    return compute(x.shape, lambda *i: E.select(i[axis].eq(first[row_of(i, axis)]), one, zero),
                   "hardmax")


def _along_axis(name: str, fn: Callable[[np.ndarray, int], np.ndarray],
                te: Callable[[Tensor, int, str], Tensor], doc: str) -> Op:
    op = Op(name, FusionKind.REDUCTION, doc=f"{doc}; attr axis (non-negative)")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        if x.rank == 0:
            raise ValueError(f"{name} needs an input of rank >= 1")
        normalize_axis(int(attrs["axis"]), x.rank)
        return x

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = ins[0]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = fn(x.astype(acc_dtype(x.dtype), copy=False), int(attrs["axis"]))
        return y.astype(x.dtype, copy=False)

    @op.def_compute
    def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
        x = ins[0]
        return te(x, int(attrs["axis"]), acc_dtype(np.dtype(x.dtype)).name)

    @op.flops
    def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
        return 4 * outs[0].size  # max, subtract, exp, sum and divide per element, roughly

    return op


softmax = _along_axis("softmax", _softmax, _softmax_te, "exp(x) / sum(exp(x)) along axis")
log_softmax = _along_axis("log_softmax", _log_softmax, _log_softmax_te,
                          "x - log(sum(exp(x))) along axis")
hardmax = _along_axis("hardmax", _hardmax, _hardmax_te, "one-hot of the first maximum along axis")

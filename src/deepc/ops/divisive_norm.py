"""Divisive normalization ops: x over a norm of its neighbours (`lrn`, `lp_normalization`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.common import normalize_axis
from deepc.ops.norm import axes_layout, reduce_stat, stat_dtype
from deepc.ops.pool import lp_norm, lp_terms
from deepc.ops.registry import FusionKind, Op

# -- lrn ----------------------------------------------------------------------------------------
lrn = Op("lrn", FusionKind.REDUCTION,
         doc="local response norm across channels: x / (bias + alpha/size * sum of squares "
             "over `size` neighbouring channels)^beta; attrs size, alpha, beta, bias")


@lrn.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank < 2 or int(attrs["size"]) < 1:
        raise ValueError(f"LRN needs an input [N, C, ...] and size >= 1, got {x}")
    return x


@lrn.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    size = int(attrs["size"])
    xs = x.astype(stat_dtype(x.dtype), copy=False)
    # channel c sums channels [c - floor((size-1)/2), c + ceil((size-1)/2)]: a prefix-sum window
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = np.square(xs)
    widths = [(0, 0)] * x.ndim
    widths[1] = (before + 1, after)
    csum = np.cumsum(np.pad(sq, widths), axis=1)
    c = x.shape[1]
    window = csum[:, size:size + c] - csum[:, :c]
    scale = float(attrs["bias"]) + float(attrs["alpha"]) / size * window
    return (xs / np.power(scale, float(attrs["beta"]))).astype(x.dtype, copy=False)


@lrn.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """Channel c sums the squares of channels c - (size-1)//2 ... c + size//2 ... that exist."""
    x = ins[0]
    size, channels = int(attrs["size"]), x.shape[1]
    acc = stat_dtype(x.dtype).name
    before = (size - 1) // 2
    r = reduce_axis(size, "lrn.r")

    def square_sum(n: E.Expr, c: E.Expr, *rest: E.Expr) -> E.Expr:
        ch = c + r - before
        v = x[(n, ch, *rest)].astype(acc)
        inside = (ch >= 0) & (ch < channels)
        return rsum(E.select(inside, v * v, E.const(0, acc)), r)

    sq = compute(x.shape, square_sum, "lrn_sum")
    bias, alpha = E.const(float(attrs["bias"]), acc), E.const(float(attrs["alpha"]) / size, acc)
    beta = E.const(float(attrs["beta"]), acc)
    return compute(x.shape, lambda *i: (x[i].astype(acc) / E.binary(
        "pow", bias + alpha * sq[i], beta)).astype(x.dtype), "lrn")


# -- lp_normalization ---------------------------------------------------------------------------
lp_normalization = Op("lp_normalization", FusionKind.REDUCTION,
                      doc="x divided by its p-norm along `axis` (0 where the norm is 0, as "
                          "onnx's reference has it); attrs axis, p (1 or 2)")


@lp_normalization.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    normalize_axis(int(attrs["axis"]), x.rank)
    if int(attrs["p"]) not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {attrs['p']}")
    return x


@lp_normalization.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    xs = x.astype(stat_dtype(x.dtype), copy=False)
    norm = lp_norm(xs, float(attrs["p"]), (int(attrs["axis"]),), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm == 0, 0, xs / norm).astype(x.dtype, copy=False)


@lp_normalization.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    acc = stat_dtype(x.dtype).name
    layout = axes_layout(x, (int(attrs["axis"]),))
    term, finish = lp_terms(float(attrs["p"]))
    total = reduce_stat(layout, lambda v, i: term(v), acc, "lp_normalization_sum")

    def body(*i: E.Var) -> E.Expr:
        norm = finish(total[layout.of(i)])
        zero = E.const(0, acc)
        return E.select(norm.eq(zero), zero, x[i].astype(acc) / norm).astype(x.dtype)

    return compute(x.shape, body, "lp_normalization")

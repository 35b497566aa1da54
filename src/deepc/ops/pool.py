"""Pooling ops (N-d): windowed max/avg/lp pooling and their global forms."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import IterVar, Reduce, Tensor, compute, reduce_axis, rmax, rsum
from deepc.ir.types import TensorType
from deepc.ops.common import present
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import (
    acc_dtype,
    pad_spatial,
    spatial_attrs,
    window_load,
    window_out_shape,
    windows,
)

WINDOW_DOC = ("attrs kernel_shape, strides, pads (begins then ends), dilations, ceil_mode "
              "(0/1; the window count along an axis is rounded up)")


def is_blocked(attrs: Attrs) -> bool:
    """Whether the input is channel-blocked, [N, C/b, *spatial, b] (attr layout 'NCHWc',
    set by the nchwc_layout pass): the block axis rides along like the batch."""
    layout = attrs.get("layout", "NCHW")
    if layout not in ("NCHW", "NCHWc"):
        raise ValueError(f"pooling layout {layout!r} is neither 'NCHW' nor 'NCHWc'")
    return layout == "NCHWc"


def plain_type(x: TensorType, attrs: Attrs) -> TensorType:
    """The input's type with a channel block folded into the channels."""
    if not is_blocked(attrs):
        return x
    return TensorType((x.shape[0], x.shape[1] * x.shape[-1], *x.shape[2:-1]), x.dtype)


def _block_out(x: TensorType, attrs: Attrs, out: TensorType) -> TensorType:
    if not is_blocked(attrs):
        return out
    return TensorType((*x.shape[:2], *out.shape[2:], x.shape[-1]), out.dtype)


def blocked_reference(fn: Callable[[Sequence[np.ndarray], Attrs], np.ndarray]
                      ) -> Callable[[Sequence[np.ndarray], Attrs], np.ndarray]:
    """The plain reference between unblocking and blocking, for blocked inputs."""
    from deepc.ops.layout import block_array, unblock_array

    def ref(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        if not is_blocked(attrs):
            return fn(ins, attrs)
        x = ins[0]
        return block_array(fn([unblock_array(x), *ins[1:]], attrs), x.shape[-1])

    return ref


def _pool_type(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank < 3 + is_blocked(attrs):
        raise ValueError(f"pooling needs an N-d input [N, C, *spatial] with N >= 3, got {x}")
    p = plain_type(x, attrs)
    kernel = tuple(attrs["kernel_shape"])
    if len(kernel) != p.rank - 2 or min(kernel) < 1:
        raise ValueError(f"kernel_shape {kernel} does not fit {p.rank - 2} spatial axes")
    out = window_out_shape(p.shape[2:], kernel, attrs, bool(attrs.get("ceil_mode", 0)))
    return _block_out(x, attrs, TensorType((*p.shape[:2], *out), x.dtype))


def pooled_windows(x: np.ndarray, attrs: Attrs, fill: float | int) -> tuple[np.ndarray, tuple]:
    """View of x's windows, [N, C, *out, *K], padded with `fill` (also past the end for
    ceil_mode), and the axes of the window taps."""
    nd = x.ndim - 2
    kernel = tuple(attrs["kernel_shape"])
    strides, pads, dilations = spatial_attrs(attrs, nd)
    out = window_out_shape(x.shape[2:], kernel, attrs, bool(attrs.get("ceil_mode", 0)))
    ends = [max(pads[nd + i], (out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                - x.shape[2 + i] - pads[i]) for i in range(nd)]
    xp = pad_spatial(x, pads[:nd], ends, fill)
    return windows(xp, kernel, strides, dilations, out), tuple(range(2 + nd, 2 + 2 * nd))


def window_counts(x_shape: Sequence[int], attrs: Attrs, include_pad: bool) -> np.ndarray:
    """How many taps of each window count toward an average: those on the input, or with
    count_include_pad those on the explicitly padded input too (never the ceil_mode tail).

    The count is separable: the outer product of one count vector per spatial axis.
    """
    nd = len(x_shape) - 2
    kernel = tuple(attrs["kernel_shape"])
    strides, pads, dilations = spatial_attrs(attrs, nd)
    out = window_out_shape(x_shape[2:], kernel, attrs, bool(attrs.get("ceil_mode", 0)))
    counts = np.ones((), np.int64)
    for i in range(nd):
        size = x_shape[2 + i]
        lo, hi = (-pads[i], size + pads[nd + i]) if include_pad else (0, size)
        pos = (np.arange(out[i])[:, None] * strides[i] - pads[i]
               + np.arange(kernel[i])[None, :] * dilations[i])
        counts = np.multiply.outer(counts, ((pos >= lo) & (pos < hi)).sum(axis=1))
    return counts


def window_count_expr(o: E.Expr, size: int, kernel: int, stride: int, dilation: int,
                      pad_begin: int, pad_end: int, include_pad: bool) -> E.Expr:
    """`window_counts` along one axis as an index formula of the window position `o`: the
    taps k in [0, kernel) with lo <= o*stride + k*dilation - pad_begin < hi."""
    lo, hi = (-pad_begin, size + pad_end) if include_pad else (0, size)
    base = o * stride - pad_begin

    def first_tap_at_or_after(bound: int) -> E.Expr:  # ceil((bound - base) / dilation)
        return (bound - base + (dilation - 1)) // dilation

    first = E.maximum(first_tap_at_or_after(lo), 0)
    return E.minimum(first_tap_at_or_after(hi), kernel) - first


Term = Callable[[E.Expr], E.Expr]
Combiner = Callable[[E.Expr, list[IterVar]], Reduce]


def _window_reduce(x: Tensor, attrs: Attrs, out: TensorType, name: str, combiner: Combiner,
                   term: Term, fill: float) -> Tensor:
    """combiner(term(tap) for each tap of each window), taps outside x reading `fill`."""
    nd = len(attrs["kernel_shape"])
    strides, pads, dilations = spatial_attrs(attrs, nd)
    taps = [reduce_axis(k, f"{name}.k{i}") for i, k in enumerate(attrs["kernel_shape"])]

    def body(n: E.Expr, c: E.Expr, *o: E.Expr) -> Reduce:
        v = window_load(x, (n, c), o[:nd], taps, strides, pads, dilations,
                        out.shape[2:2 + nd], fill, o[nd:])
        return combiner(term(v), taps)

    return compute(out.shape, body, name)


# -- max_pool -----------------------------------------------------------------------------------
max_pool = Op("max_pool", FusionKind.REDUCTION, doc=f"maximum over each window; {WINDOW_DOC}")
max_pool.infer(_pool_type)


@max_pool.reference
@blocked_reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win, taps = pooled_windows(x, attrs, fill)
    return win.max(axis=taps)


@max_pool.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    fill = -np.inf if x.dtype.startswith("float") else np.iinfo(x.dtype).min
    return _window_reduce(x, attrs, outs[0], "max_pool", rmax, lambda v: v, fill)


# -- avg_pool -----------------------------------------------------------------------------------
avg_pool = Op("avg_pool", FusionKind.REDUCTION,
              doc=f"mean over each window; {WINDOW_DOC}, count_include_pad (0/1)")
avg_pool.infer(_pool_type)


@avg_pool.reference
@blocked_reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    win, taps = pooled_windows(x.astype(acc_dtype(x.dtype), copy=False), attrs, 0)
    counts = window_counts(x.shape, attrs, bool(attrs.get("count_include_pad", 0)))
    return (win.sum(axis=taps) / counts).astype(x.dtype, copy=False)


@avg_pool.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, out = ins[0], outs[0]
    acc = acc_dtype(np.dtype(x.dtype)).name
    total = _window_reduce(x, attrs, out, "avg_pool", rsum, lambda v: v.astype(acc), 0)
    include_pad = bool(attrs.get("count_include_pad", 0))
    plain = plain_type(TensorType(x.shape, x.dtype), attrs)
    counts = window_counts(plain.shape, attrs, include_pad)
    uniform = counts.min() == counts.max()  # every window counts the same taps: a constant
    nd = plain.rank - 2
    strides, pads, dilations = spatial_attrs(attrs, nd)
    kernel = attrs["kernel_shape"]

    def count(o: Sequence[E.Expr]) -> E.Expr:
        if uniform:
            return E.const(int(counts.flat[0]), acc)
        per_axis = [window_count_expr(o[i], plain.shape[2 + i], kernel[i], strides[i],
                                      dilations[i], pads[i], pads[nd + i], include_pad)
                    for i in range(nd)]
        return math.prod(per_axis[1:], start=per_axis[0]).astype(acc)

    return compute(out.shape, lambda n, c, *o: (total[(n, c, *o)] / count(o)).astype(out.dtype),
                   "avg_pool_mean")


# -- lp_pool ------------------------------------------------------------------------------------
lp_pool = Op("lp_pool", FusionKind.REDUCTION,
             doc=f"p-norm over each window, (sum |x|^p)^(1/p); {WINDOW_DOC}, p")
lp_pool.infer(_pool_type)


def lp_norm(x: np.ndarray, p: float, axes: tuple[int, ...], keepdims: bool = False
            ) -> np.ndarray:
    a = np.abs(x)
    if p == 1:
        return a.sum(axis=axes, keepdims=keepdims)
    if p == 2:
        return np.sqrt(np.square(a).sum(axis=axes, keepdims=keepdims))
    return np.power(np.power(a, p).sum(axis=axes, keepdims=keepdims), 1.0 / p)


def lp_terms(p: float) -> tuple[Term, Term]:
    """The p-norm as (term of one element, finish of the sum of terms), like `lp_norm`."""
    if p == 1:
        return (lambda v: E.call("fabs", v)), (lambda s: s)
    if p == 2:
        return (lambda v: v * v), (lambda s: E.call("sqrt", s))
    return ((lambda v: E.binary("pow", E.call("fabs", v), E.as_expr(p, v))),
            (lambda s: E.binary("pow", s, E.as_expr(1.0 / p, s))))


def _lp_compute(x: Tensor, attrs: Attrs, out: TensorType, name: str,
                reduce: Callable[[Term], Tensor]) -> Tensor:
    """finish(sum of term(x)) with the sum built by `reduce(term)`, cast to the output."""
    acc = acc_dtype(np.dtype(x.dtype)).name
    term, finish = lp_terms(float(attrs.get("p", 2)))
    total = reduce(lambda v: term(v.astype(acc)))
    return compute(out.shape, lambda *i: finish(total[i]).astype(out.dtype), f"{name}_root")


@lp_pool.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    return _lp_compute(ins[0], attrs, outs[0], "lp_pool", lambda term: _window_reduce(
        ins[0], attrs, outs[0], "lp_pool", rsum, term, 0))


@lp_pool.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    win, taps = pooled_windows(x.astype(acc_dtype(x.dtype), copy=False), attrs, 0)
    return lp_norm(win, float(attrs.get("p", 2)), taps).astype(x.dtype, copy=False)


@max_pool.flops
@avg_pool.flops
@lp_pool.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return outs[0].size * math.prod(attrs["kernel_shape"])


# -- global pools -------------------------------------------------------------------------------
def _global_type(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank < 2 + is_blocked(attrs):
        raise ValueError(f"global pooling needs an input [N, C, *spatial], got {x}")
    p = plain_type(x, attrs)
    return _block_out(x, attrs, TensorType((*p.shape[:2], *(1,) * (p.rank - 2)), x.dtype))


SpatialReduce = Callable[[Combiner, Term], Tensor]


def _global(name: str, doc: str, fn: Callable[[np.ndarray, tuple[int, ...], Attrs], np.ndarray],
            te: Callable[[Tensor, Attrs, TensorType, SpatialReduce], Tensor]) -> Op:
    """A pool over all spatial axes; `te(x, attrs, out, reduce)` is its compute, where
    `reduce(combiner, term)` reduces term(x) over the spatial axes of each (n, c)."""
    op = Op(name, FusionKind.REDUCTION, doc=doc)
    op.infer(_global_type)

    @op.def_compute
    def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
        x = present(ins)[0]
        trail = int(is_blocked(attrs))
        axes = [reduce_axis(s, f"{name}.r{i}")
                for i, s in enumerate(x.shape[2:x.rank - trail])]

        def reduce(combiner: Combiner, term: Term) -> Tensor:
            return compute(outs[0].shape, lambda n, c, *r: combiner(
                term(x[(n, c, *axes, *r[len(r) - trail:])]), axes), name)

        return te(x, attrs, outs[0], reduce)

    @op.reference
    @blocked_reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = present(ins)[0]
        axes = tuple(range(2, x.ndim))
        return np.asarray(fn(x.astype(acc_dtype(x.dtype), copy=False), axes, attrs)
                          ).astype(x.dtype, copy=False)

    return op


def _global_avg(x: Tensor, attrs: Attrs, out: TensorType, reduce: SpatialReduce) -> Tensor:
    acc = acc_dtype(np.dtype(x.dtype)).name
    total = reduce(rsum, lambda v: v.astype(acc))
    size = E.const(math.prod(plain_type(TensorType(x.shape, x.dtype), attrs).shape[2:]), acc)
    return compute(out.shape, lambda *i: (total[i] / size).astype(out.dtype), "global_avg_mean")


_global("global_avg_pool", "mean over all spatial axes, kept as size 1",
        lambda x, axes, a: x.mean(axis=axes, keepdims=True), _global_avg)
_global("global_max_pool", "maximum over all spatial axes, kept as size 1",
        lambda x, axes, a: x.max(axis=axes, keepdims=True),
        lambda x, attrs, out, reduce: reduce(rmax, lambda v: v))
_global("global_lp_pool", "p-norm over all spatial axes, kept as size 1; attr p",
        lambda x, axes, a: lp_norm(x, float(a.get("p", 2)), axes, keepdims=True),
        lambda x, attrs, out, reduce: _lp_compute(
            x, attrs, out, "global_lp_pool", lambda term: reduce(rsum, term)))

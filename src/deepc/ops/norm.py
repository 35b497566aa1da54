"""Standardizing normalization ops: batch, instance, group, layer and mean-variance norm."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.common import broadcast_index, normalize_axis, present
from deepc.ops.registry import FusionKind, Op


def stat_dtype(dtype: np.dtype | str) -> np.dtype:
    """Statistics are computed in float32, or float64 for float64 inputs (as runtimes do)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def standardize(x: np.ndarray, axes: tuple[int, ...], eps: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + eps) over `axes` in the statistics dtype; also mean and
    1/sqrt(var + eps), kept with size-1 reduced axes."""
    xs = x.astype(stat_dtype(x.dtype), copy=False)
    mean = xs.mean(axis=axes, keepdims=True)
    centred = xs - mean
    inv_std = 1 / np.sqrt(np.square(centred).mean(axis=axes, keepdims=True) + eps)
    return centred * inv_std, mean, inv_std


@dataclass(frozen=True)
class StatLayout:
    """Which elements of x a normalization's statistics summarize: one statistic per index of
    `shape`, over reduction axes of `extents`; `element(stat, red)` is the x element at a
    statistic index and reduction indices, `of(idx)` the statistic index of x[idx]."""

    shape: tuple[int, ...]
    extents: tuple[int, ...]
    element: Callable[[Sequence[E.Expr], Sequence[E.Expr]], E.Expr]
    of: Callable[[Sequence[E.Expr]], tuple[E.Expr, ...]]


def axes_layout(x: Tensor, axes: Sequence[int]) -> StatLayout:
    """Statistics over `axes` of x: one per index of the other axes."""
    def element(stat: Sequence[E.Expr], red: Sequence[E.Expr]) -> E.Expr:
        kept, summed = iter(stat), iter(red)
        return x[tuple(next(summed) if d in axes else next(kept) for d in range(x.rank))]

    return StatLayout(tuple(n for d, n in enumerate(x.shape) if d not in axes),
                      tuple(x.shape[d] for d in axes), element,
                      lambda idx: tuple(v for d, v in enumerate(idx) if d not in axes))


StatTerm = Callable[[E.Expr, tuple[E.Expr, ...]], E.Expr]


def reduce_stat(layout: StatLayout, term: StatTerm, dtype: str, name: str) -> Tensor:
    """The sum of term(element cast to `dtype`, statistic index) for each statistic."""
    red = [reduce_axis(n, f"{name}.r{i}") for i, n in enumerate(layout.extents)]
    return compute(layout.shape, lambda *i: rsum(
        term(layout.element(i, red).astype(dtype), i), red), name)


def moments(layout: StatLayout, dtype: str, name: str) -> tuple[Tensor, Tensor]:
    """Mean and variance in `dtype`, in two passes like `standardize`: E[(x - E[x])^2]."""
    count = E.const(int(np.prod(layout.extents)), dtype)
    total = reduce_stat(layout, lambda v, i: v, dtype, f"{name}_sum")
    mean = compute(layout.shape, lambda *i: total[i] / count, f"{name}_mean")

    def sq_dev(v: E.Expr, i: tuple[E.Expr, ...]) -> E.Expr:
        d = v - mean[i]
        return d * d

    sq = reduce_stat(layout, sq_dev, dtype, f"{name}_sq")
    return mean, compute(layout.shape, lambda *i: sq[i] / count, f"{name}_var")


def standardized(x: Tensor, layout: StatLayout, eps: float, name: str
                 ) -> tuple[Callable[[Sequence[E.Expr]], E.Expr], Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) as a function of x's index, in the statistics dtype;
    also the mean and 1/sqrt(var + eps) stages."""
    acc = stat_dtype(x.dtype).name
    mean, var = moments(layout, acc, name)
    one, eps_c = E.const(1, acc), E.const(eps, acc)
    inv_std = compute(layout.shape, lambda *i: one / E.call("sqrt", var[i] + eps_c),
                      f"{name}_inv_std")

    def y(idx: Sequence[E.Expr]) -> E.Expr:
        stat = layout.of(idx)
        return (x[tuple(idx)].astype(acc) - mean[stat]) * inv_std[stat]

    return y, mean, inv_std


def scale_shift(x: Tensor, y: Callable[[Sequence[E.Expr]], E.Expr], scale: Tensor,
                bias: Tensor | None, index: Callable[..., tuple[E.Expr, ...]], dtype: str,
                name: str) -> Tensor:
    """y(idx) * scale[index(idx)] (+ bias[...]) cast to `dtype`, over x's shape."""
    def body(*idx: E.Expr) -> E.Expr:
        v = y(idx)
        v = v * scale[index(idx, scale)].astype(v.dtype)
        if bias is not None:
            v = v + bias[index(idx, bias)].astype(v.dtype)
        return v.astype(dtype)

    return compute(x.shape, body, name)


def channel_index(idx: Sequence[E.Expr], p: Tensor) -> tuple[E.Expr, ...]:
    return (idx[1],)


def per_channel(p: np.ndarray, rank: int, dtype: np.dtype) -> np.ndarray:
    """A [C] parameter shaped to broadcast over [N, C, *spatial]."""
    return p.astype(dtype, copy=False).reshape(-1, *(1,) * (rank - 2))


def _check_channel_params(x: TensorType, params: Sequence[TensorType | None],
                          allowed: Sequence[tuple[int, ...]]) -> None:
    if x.rank < 2:
        raise ValueError(f"input must be [N, C, ...], got {x}")
    for p in params:
        if p is not None and p.shape not in allowed:
            raise ValueError(f"parameter {p} must have shape "
                             f"{' or '.join(str(a) for a in allowed)}")


# -- batch_norm ---------------------------------------------------------------------------------
batch_norm = Op("batch_norm", FusionKind.BROADCAST,
                doc="inference batch norm: (x - mean) / sqrt(var + epsilon) * scale + bias; "
                    "inputs x, scale, bias, mean, var of shape [C] (or x.shape[1:] per "
                    "activation); attr epsilon")


@batch_norm.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    _check_channel_params(x, ins[1:5], [(x.shape[1],), x.shape[1:]])
    return x


@batch_norm.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, scale, bias, mean, var = ins
    acc = stat_dtype(x.dtype)

    def shaped(p: np.ndarray) -> np.ndarray:
        return per_channel(p, x.ndim, acc) if p.ndim == 1 else p.astype(acc, copy=False)

    inv = shaped(scale) / np.sqrt(shaped(var) + float(attrs["epsilon"]))
    y = (x.astype(acc, copy=False) - shaped(mean)) * inv + shaped(bias)
    return y.astype(x.dtype, copy=False)


@batch_norm.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, scale, bias, mean, var = ins
    acc = stat_dtype(x.dtype).name
    eps = E.const(float(attrs["epsilon"]), acc)

    def body(*i: E.Expr) -> E.Expr:
        def p(t: Tensor) -> E.Expr:
            return t[(i[1],) if t.rank == 1 else i[1:]].astype(acc)

        inv = p(scale) / E.call("sqrt", p(var) + eps)
        return ((x[i].astype(acc) - p(mean)) * inv + p(bias)).astype(x.dtype)

    return compute(x.shape, body, "batch_norm")


# -- instance_norm ------------------------------------------------------------------------------
instance_norm = Op("instance_norm", FusionKind.REDUCTION,
                   doc="normalize each (n, c) over the spatial axes, then scale[C], bias[C]; "
                       "attr epsilon")


@instance_norm.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    _check_channel_params(x, ins[1:3], [(x.shape[1],)])
    if x.rank < 3:
        raise ValueError(f"input must be [N, C, *spatial], got {x}")
    return x


@instance_norm.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, scale, bias = ins
    y, _, _ = standardize(x, tuple(range(2, x.ndim)), float(attrs["epsilon"]))
    y = y * per_channel(scale, x.ndim, y.dtype) + per_channel(bias, x.ndim, y.dtype)
    return y.astype(x.dtype, copy=False)


@instance_norm.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, scale, bias = ins
    layout = axes_layout(x, tuple(range(2, x.rank)))
    y, _, _ = standardized(x, layout, float(attrs["epsilon"]), "instance_norm")
    return scale_shift(x, y, scale, bias, channel_index, x.dtype, "instance_norm")


# -- group_norm ---------------------------------------------------------------------------------
group_norm = Op("group_norm", FusionKind.REDUCTION,
                doc="normalize each of num_groups channel groups of each sample, then "
                    "scale[C], bias[C]; attrs num_groups, epsilon")


@group_norm.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    _check_channel_params(x, ins[1:3], [(x.shape[1],)])
    groups = int(attrs["num_groups"])
    if groups < 1 or x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} channels cannot form {groups} groups")
    return x


@group_norm.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, scale, bias = ins
    grouped = x.reshape(x.shape[0], int(attrs["num_groups"]), -1)
    y, _, _ = standardize(grouped, (2,), float(attrs["epsilon"]))
    y = y.reshape(x.shape)
    y = y * per_channel(scale, x.ndim, y.dtype) + per_channel(bias, x.ndim, y.dtype)
    return y.astype(x.dtype, copy=False)


@group_norm.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """Statistics per (sample, group) over the group's channels and all spatial axes."""
    x, scale, bias = ins
    groups = int(attrs["num_groups"])
    cg = x.shape[1] // groups
    layout = StatLayout(
        (x.shape[0], groups), (cg, *x.shape[2:]),
        lambda stat, red: x[(stat[0], stat[1] * cg + red[0], *red[1:])],
        lambda idx: (idx[0], idx[1] // cg))
    y, _, _ = standardized(x, layout, float(attrs["epsilon"]), "group_norm")
    return scale_shift(x, y, scale, bias, channel_index, x.dtype, "group_norm")


# -- layer_norm ---------------------------------------------------------------------------------
layer_norm = Op("layer_norm", FusionKind.REDUCTION,
                doc="normalize over axes [axis, rank), then * scale (+ bias), both "
                    "broadcasting to x.shape[axis:]; attrs axis, epsilon, stats (0/1: also "
                    "output float32 Mean and InvStdDev, shaped x.shape[:axis] + 1s)")


@layer_norm.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x = ins[0]
    assert x is not None
    axis = int(attrs["axis"])
    if not 0 <= axis < max(x.rank, 1):
        raise ValueError(f"axis {axis} out of range for {x}")
    inner = x.shape[axis:]
    for p in present(ins[1:]):
        if len(p.shape) > len(inner) or np.broadcast_shapes(p.shape, inner) != inner:
            raise ValueError(f"parameter {p} does not broadcast to the normalized shape {inner}")
    if not attrs.get("stats", 0):
        return [x]
    # ONNX's stash_type=1: Mean and InvStdDev are float32 whatever the input type
    stats = TensorType((*x.shape[:axis], *(1,) * (x.rank - axis)), "float32")
    return [x, stats, stats]


@layer_norm.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> tuple[np.ndarray, ...]:
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    y, mean, inv_std = standardize(x, tuple(range(int(attrs["axis"]), x.ndim)),
                                   float(attrs["epsilon"]))
    y = y * scale.astype(y.dtype, copy=False)
    if bias is not None:
        y = y + bias.astype(y.dtype, copy=False)
    y = y.astype(x.dtype, copy=False)
    if not attrs.get("stats", 0):
        return (y,)
    return y, mean.astype(np.float32, copy=False), inv_std.astype(np.float32, copy=False)


@layer_norm.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> list[Tensor]:
    x, scale = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    axis = int(attrs["axis"])
    layout = axes_layout(x, tuple(range(axis, x.rank)))
    y, mean, inv_std = standardized(x, layout, float(attrs["epsilon"]), "layer_norm")
    out = scale_shift(x, y, scale, bias, lambda idx, p: broadcast_index(idx[axis:], p.shape),
                      x.dtype, "layer_norm")
    if not attrs.get("stats", 0):
        return [out]
    return [out, *(compute(outs[1].shape, lambda *i, t=t: t[i[:axis]].astype("float32"),
                           f"{t.name}_out") for t in (mean, inv_std))]


# -- mean_variance_normalization ----------------------------------------------------------------
MVN_EPSILON = 1e-9  # fixed by the ONNX function body; added to the standard deviation

mean_variance_normalization = Op(
    "mean_variance_normalization", FusionKind.REDUCTION,
    doc="(x - mean) / (std + 1e-9) with mean and std over attr axes")


@mean_variance_normalization.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    for a in attrs["axes"]:
        normalize_axis(int(a), x.rank)
    return x


@mean_variance_normalization.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    axes = tuple(int(a) for a in attrs["axes"])
    xs = x.astype(stat_dtype(x.dtype), copy=False)
    # E[(x - mean)^2]: the function body's E[x^2] - E[x]^2 is the same number, less exactly
    centred = xs - xs.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.square(centred).mean(axis=axes, keepdims=True))
    return (centred / (std + MVN_EPSILON)).astype(x.dtype, copy=False)


@mean_variance_normalization.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    acc = stat_dtype(x.dtype).name
    layout = axes_layout(x, tuple(int(a) for a in attrs["axes"]))
    mean, var = moments(layout, acc, "mvn")
    eps = E.const(MVN_EPSILON, acc)

    def body(*i: E.Expr) -> E.Expr:
        stat = layout.of(i)
        return ((x[i].astype(acc) - mean[stat]) / (E.call("sqrt", var[stat]) + eps)
                ).astype(x.dtype)

    return compute(x.shape, body, "mvn")

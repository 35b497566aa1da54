"""Normalization ops: batch, instance, layer and group norm, LRN, Lp and mean-variance norm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.common import normalize_axis, present
from deepc.ops.pool import lp_norm
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


# -- lp_normalization ---------------------------------------------------------------------------
lp_normalization = Op("lp_normalization", FusionKind.REDUCTION,
                      doc="x divided by its p-norm along `axis`; attrs axis, p (1 or 2)")


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
        return (xs / norm).astype(x.dtype, copy=False)


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

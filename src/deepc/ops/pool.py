"""Pooling ops (N-d): windowed max/avg/lp pooling and their global forms."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.common import present
from deepc.ops.conv import acc_dtype, pad_spatial, spatial_attrs, window_out_shape, windows
from deepc.ops.registry import FusionKind, Op

WINDOW_DOC = ("attrs kernel_shape, strides, pads (begins then ends), dilations, ceil_mode "
              "(0/1; the window count along an axis is rounded up)")


def _pool_type(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank < 3:
        raise ValueError(f"pooling needs an N-d input [N, C, *spatial] with N >= 3, got {x}")
    kernel = tuple(attrs["kernel_shape"])
    if len(kernel) != x.rank - 2 or min(kernel) < 1:
        raise ValueError(f"kernel_shape {kernel} does not fit {x.rank - 2} spatial axes")
    out = window_out_shape(x.shape[2:], kernel, attrs, bool(attrs.get("ceil_mode", 0)))
    return TensorType((*x.shape[:2], *out), x.dtype)


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


# -- max_pool -----------------------------------------------------------------------------------
max_pool = Op("max_pool", FusionKind.REDUCTION, doc=f"maximum over each window; {WINDOW_DOC}")
max_pool.infer(_pool_type)


@max_pool.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win, taps = pooled_windows(x, attrs, fill)
    return win.max(axis=taps)


# -- avg_pool -----------------------------------------------------------------------------------
avg_pool = Op("avg_pool", FusionKind.REDUCTION,
              doc=f"mean over each window; {WINDOW_DOC}, count_include_pad (0/1)")
avg_pool.infer(_pool_type)


@avg_pool.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    win, taps = pooled_windows(x.astype(acc_dtype(x.dtype), copy=False), attrs, 0)
    counts = window_counts(x.shape, attrs, bool(attrs.get("count_include_pad", 0)))
    return (win.sum(axis=taps) / counts).astype(x.dtype, copy=False)


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
    if x.rank < 2:
        raise ValueError(f"global pooling needs an input [N, C, *spatial], got {x}")
    return TensorType((*x.shape[:2], *(1,) * (x.rank - 2)), x.dtype)


def _global(name: str, doc: str, fn) -> Op:  # type: ignore[no-untyped-def]
    op = Op(name, FusionKind.REDUCTION, doc=doc)
    op.infer(_global_type)

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = present(ins)[0]
        axes = tuple(range(2, x.ndim))
        return np.asarray(fn(x.astype(acc_dtype(x.dtype), copy=False), axes, attrs)
                          ).astype(x.dtype, copy=False)

    return op


_global("global_avg_pool", "mean over all spatial axes, kept as size 1",
        lambda x, axes, a: x.mean(axis=axes, keepdims=True))
_global("global_max_pool", "maximum over all spatial axes, kept as size 1",
        lambda x, axes, a: x.max(axis=axes, keepdims=True))
_global("global_lp_pool", "p-norm over all spatial axes, kept as size 1; attr p",
        lambda x, axes, a: lp_norm(x, float(a.get("p", 2)), axes, keepdims=True))

"""Spatial window helpers shared by conv and pooling ops: attrs, output sizes, strided
window views for references, and bounds-tested window loads for computes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import IterVar, Tensor


def spatial_attrs(attrs: Attrs, nd: int) -> tuple[tuple[int, ...], tuple[int, ...],
                                                    tuple[int, ...]]:
    """(strides, pads, dilations) of a windowed op with `nd` spatial axes, checked.

    `pads` is ONNX's layout: all begins, then all ends.
    """
    strides = tuple(attrs.get("strides") or (1,) * nd)
    pads = tuple(attrs.get("pads") or (0,) * (2 * nd))
    dilations = tuple(attrs.get("dilations") or (1,) * nd)
    if len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
        raise ValueError(f"strides {strides}, pads {pads}, dilations {dilations} do not fit "
                         f"{nd} spatial axes")
    if min(strides) < 1 or min(dilations) < 1 or min(pads) < 0:
        raise ValueError(f"strides {strides} and dilations {dilations} must be positive, "
                         f"pads {pads} non-negative")
    return strides, pads, dilations


def window_out_size(size: int, kernel: int, stride: int, dilation: int, pad_begin: int,
                    pad_end: int, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (ONNX/PyTorch rule for ceil_mode: the last
    window must start inside the input or the begin padding)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def window_out_shape(in_shape: Sequence[int], kernel: Sequence[int], attrs: Attrs,
                     ceil_mode: bool = False) -> tuple[int, ...]:
    nd = len(in_shape)
    strides, pads, dilations = spatial_attrs(attrs, nd)
    out = tuple(window_out_size(in_shape[i], kernel[i], strides[i], dilations[i], pads[i],
                                pads[nd + i], ceil_mode) for i in range(nd))
    if min(out, default=1) < 1:
        raise ValueError(f"window {tuple(kernel)} does not fit spatial shape {tuple(in_shape)} "
                         f"with pads {pads} and dilations {dilations}")
    return out


def windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int],
            dilations: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """A strided view of `x` (already padded): shape x.shape[:-nd] + out + kernel.

    No copy is made; window `o`, tap `k` along an axis reads x[o*stride + k*dilation].
    """
    nd = len(kernel)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = np.lib.stride_tricks.sliding_window_view(x, span, axis=tuple(range(-nd, 0)))
    lead = (slice(None),) * (x.ndim - nd)
    taps = tuple(slice(None, None, d) for d in dilations)
    outs = tuple(slice(None, (o - 1) * s + 1, s) for o, s in zip(out, strides))
    return view[(*lead, *outs, *taps)]


def pad_spatial(x: np.ndarray, begins: Sequence[int], ends: Sequence[int],
                value: float | int = 0) -> np.ndarray:
    """Pad the trailing len(begins) axes; returns `x` itself when nothing is padded."""
    if not any(begins) and not any(ends):
        return x
    widths = [(0, 0)] * (x.ndim - len(begins)) + list(zip(begins, ends))
    return np.pad(x, widths, constant_values=value)


def acc_dtype(dtype: np.dtype) -> np.dtype:
    """Accumulate float16 in float32 (as runtimes do); other dtypes in themselves."""
    return np.dtype(np.float32) if dtype == np.float16 else dtype


def exact_dtype(dtype: np.dtype) -> np.dtype:
    """Sum float32 and float16 in float64 so that each result is (nearly always) the correctly
    rounded value: results that are equal in exact arithmetic stay bitwise equal whatever the
    summation order, as ill-conditioned consumers (a softmax of huge logits) need."""
    return np.dtype(np.float64) if dtype.kind == "f" else dtype


def all_of(conds: Sequence[E.Expr]) -> E.Expr | None:
    """The conjunction of `conds`, or None when there is nothing to test."""
    out: E.Expr | None = None
    for c in conds:
        out = c if out is None else out & c
    return out


def window_load(x: Tensor, lead: Sequence[E.Expr], outs: Sequence[E.Expr],
                taps: Sequence[IterVar], strides: Sequence[int], pads: Sequence[int],
                dilations: Sequence[int], out_sizes: Sequence[int], fill: float,
                trail: Sequence[E.Expr] = ()) -> E.Expr:
    """x[*lead, o*stride + k*dilation - pad_begin] along each spatial axis, or `fill` where
    the tap falls outside x (in the padding or a ceil_mode tail). Bounds that no window can
    cross are not tested, so unpadded windows load without a select. `trail` indexes the
    axes after the spatial ones (a channel block)."""
    idx, conds = [], []
    for i, (o, k) in enumerate(zip(outs, taps)):
        pos = o * strides[i] + k * dilations[i] - pads[i]
        size = x.shape[len(lead) + i]
        if pads[i] > 0:
            conds.append(pos >= 0)
        if (out_sizes[i] - 1) * strides[i] + (k.extent - 1) * dilations[i] - pads[i] >= size:
            conds.append(pos < size)
        idx.append(pos)
    value = x[(*lead, *idx, *trail)]
    cond = all_of(conds)
    return value if cond is None else E.select(cond, value, E.as_expr(fill, value))

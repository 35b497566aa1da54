"""Convolution ops (N-d, grouped, dilated): `conv` and `conv_transpose`, plus window helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op


# -- spatial window helpers (shared with pool.py) ----------------------------------------------
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


def _check_conv_inputs(x: TensorType, w: TensorType, b: TensorType | None, channels_in: int,
                       channels_out: int, attrs: Attrs) -> int:
    if x.rank < 3 or w.rank != x.rank:
        raise ValueError(f"input and weight must both be N-d with N >= 3, got {x} and {w}")
    if x.dtype != w.dtype:
        raise ValueError(f"input {x.dtype} and weight {w.dtype} differ")
    group = int(attrs.get("group", 1))
    if group < 1 or channels_in % group or x.shape[1] != channels_in:
        raise ValueError(f"{x.shape[1]} input channels do not match weight {w} with {group} "
                         "groups")
    if channels_out % group:
        raise ValueError(f"{channels_out} output channels not divisible by group {group}")
    if b is not None and b.shape != (channels_out,):
        raise ValueError(f"bias {b} must have shape ({channels_out},)")
    return group


# -- conv ---------------------------------------------------------------------------------------
conv = Op("conv", FusionKind.OUT_FUSABLE,
          doc="N-d grouped convolution: x[N,C,*S], w[M,C/group,*K], optional bias[M]; "
              "attrs strides, pads (begins then ends), dilations, group")


@conv.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    group = int(attrs.get("group", 1))
    _check_conv_inputs(x, w, b, w.shape[1] * group, w.shape[0], attrs)
    out = window_out_shape(x.shape[2:], w.shape[2:], attrs)
    return TensorType((x.shape[0], w.shape[0], *out), x.dtype)


@conv.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    nd = x.ndim - 2
    strides, pads, dilations = spatial_attrs(attrs, nd)
    group = int(attrs.get("group", 1))
    n, m, kernel = x.shape[0], w.shape[0], w.shape[2:]
    out = window_out_shape(x.shape[2:], kernel, attrs)
    acc = exact_dtype(x.dtype)
    xp = pad_spatial(x.astype(acc, copy=False), pads[:nd], pads[nd:])
    # im2col as one strided view, grouped: [N, G, Cg, *out, *K] -> [N, G, P, Cg*K]
    win = windows(xp, kernel, strides, dilations, out)
    cg, mg = x.shape[1] // group, m // group
    win = win.reshape(n, group, cg, *out, *kernel)
    order = (0, 1, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
    cols = win.transpose(order).reshape(n, group, math.prod(out), cg * math.prod(kernel))
    wm = w.astype(acc, copy=False).reshape(group, mg, -1).transpose(0, 2, 1)
    y = np.matmul(cols, wm)  # [N, G, P, Mg]
    y = y.transpose(0, 1, 3, 2).reshape(n, m, *out)
    if b is not None:
        y = y + b.astype(acc, copy=False).reshape(m, *(1,) * nd)
    return y.astype(x.dtype, copy=False)


@conv.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    w = ins[1]
    assert w is not None
    return 2 * outs[0].size * math.prod(w.shape[1:])


# -- conv_transpose -----------------------------------------------------------------------------
conv_transpose = Op(
    "conv_transpose", FusionKind.OUT_FUSABLE,
    doc="N-d transposed convolution: x[N,C,*S], w[C,M/group,*K], optional bias[M]; attrs "
        "strides, pads (cropped from the full output), dilations, group, output_padding")


def transpose_out_shape(in_shape: Sequence[int], kernel: Sequence[int],
                        attrs: Attrs) -> tuple[int, ...]:
    """ONNX: s*(in-1) + output_padding + (k-1)*d + 1 - pad_begin - pad_end per axis."""
    nd = len(in_shape)
    strides, pads, dilations = spatial_attrs(attrs, nd)
    extra = tuple(attrs.get("output_padding") or (0,) * nd)
    if len(extra) != nd or min(extra, default=0) < 0:
        raise ValueError(f"output_padding {extra} does not fit {nd} spatial axes")
    out = tuple(strides[i] * (in_shape[i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i] + 1
                - pads[i] - pads[nd + i] for i in range(nd))
    if min(out, default=1) < 1:
        raise ValueError(f"pads {pads} crop the whole output")
    return out


@conv_transpose.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    group = int(attrs.get("group", 1))
    _check_conv_inputs(x, w, b, w.shape[0], w.shape[1] * group, attrs)
    out = transpose_out_shape(x.shape[2:], w.shape[2:], attrs)
    return TensorType((x.shape[0], w.shape[1] * group, *out), x.dtype)


@conv_transpose.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    nd = x.ndim - 2
    strides, pads, dilations = spatial_attrs(attrs, nd)
    extra = tuple(attrs.get("output_padding") or (0,) * nd)
    group = int(attrs.get("group", 1))
    n, c, in_sp, kernel = x.shape[0], x.shape[1], x.shape[2:], w.shape[2:]
    cg, mg = c // group, w.shape[1]
    m = mg * group
    acc = exact_dtype(x.dtype)
    # every input pixel scatters a [Mg, *K] patch: one matmul, then col2im over the K taps
    xm = x.astype(acc, copy=False).reshape(n, group, cg, -1).transpose(0, 1, 3, 2)
    cols = np.matmul(xm, w.astype(acc, copy=False).reshape(group, cg, -1))  # [N, G, P, Mg*K]
    cols = cols.reshape(n, group, *in_sp, mg, *kernel)
    order = (0, 1, 2 + nd, *range(3 + nd, 3 + 2 * nd), *range(2, 2 + nd))
    cols = cols.transpose(order).reshape(n, m, *kernel, *in_sp)
    full = [strides[i] * (in_sp[i] - 1) + (kernel[i] - 1) * dilations[i] + 1 + extra[i]
            for i in range(nd)]
    y = np.zeros((n, m, *full), acc)
    for tap in np.ndindex(*kernel):
        dst = tuple(slice(t * d, t * d + s * (i - 1) + 1, s)
                    for t, d, s, i in zip(tap, dilations, strides, in_sp))
        y[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *tap)]
    out = transpose_out_shape(in_sp, kernel, attrs)
    y = y[(slice(None), slice(None), *(slice(p, p + o) for p, o in zip(pads[:nd], out)))]
    if b is not None:
        y = y + b.astype(acc, copy=False).reshape(m, *(1,) * nd)
    return np.ascontiguousarray(y).astype(x.dtype, copy=False)


@conv_transpose.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return 2 * x.size * math.prod(w.shape[1:])

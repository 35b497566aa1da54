"""Convolution ops (N-d, grouped, dilated): `conv` and `conv_transpose`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import IterVar, Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import (
    acc_dtype,
    all_of,
    exact_dtype,
    pad_spatial,
    spatial_attrs,
    window_out_shape,
    windows,
)


def with_bias(y: Tensor, b: Tensor | None, dtype: str, name: str) -> Tensor:
    """The epilogue of a conv-like reduction y[N, M, ...]: + bias[M], then the cast to the
    output dtype; the lowering fuses it into the reduction's store."""
    if b is None and y.dtype == dtype:
        return y

    def body(n: E.Expr, m: E.Expr, *rest: E.Expr) -> E.Expr:
        v = y[(n, m, *rest)]
        return (v if b is None else v + b[m].astype(v.dtype)).astype(dtype)

    return compute(y.shape, body, name)


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
              "attrs strides, pads (begins then ends), dilations, group, and kernel_layout "
              "'OIHW' (default) or 'IHWO' (w[C/group,*K,M]: output channels contiguous, set "
              "by the layout pass for weights that are constants)")


def kernel_is_ihwo(attrs: Attrs) -> bool:
    return attrs.get("kernel_layout", "OIHW") == "IHWO"


def oihw_type(w: TensorType, attrs: Attrs) -> TensorType:
    """The weight's type in the default layout."""
    if not kernel_is_ihwo(attrs):
        return w
    return TensorType((w.shape[-1], w.shape[0], *w.shape[1:-1]), w.dtype)


@conv.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    w = oihw_type(w, attrs)
    group = int(attrs.get("group", 1))
    _check_conv_inputs(x, w, b, w.shape[1] * group, w.shape[0], attrs)
    out = window_out_shape(x.shape[2:], w.shape[2:], attrs)
    return TensorType((x.shape[0], w.shape[0], *out), x.dtype)


@conv.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    if kernel_is_ihwo(attrs):
        w = np.moveaxis(w, -1, 0)
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


@conv.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """One reduction over (input channels of the group, kernel taps); the group of output
    channel m is m // (M / group)."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    nd = x.rank - 2
    strides, pads, dilations = spatial_attrs(attrs, nd)
    group = int(attrs.get("group", 1))
    ihwo = kernel_is_ihwo(attrs)
    wt = oihw_type(TensorType(w.shape, w.dtype), attrs)
    cg, mg = wt.shape[1], wt.shape[0] // group
    acc = acc_dtype(np.dtype(x.dtype)).name
    out = outs[0].shape
    rc = reduce_axis(cg, "conv.rc")
    taps = [reduce_axis(k, f"conv.rk{i}") for i, k in enumerate(wt.shape[2:])]

    xp, offsets = padded(x, taps, strides, pads, dilations, out[2:])

    def body(n: E.Expr, m: E.Expr, *o: E.Expr) -> E.Expr:
        c = rc if group == 1 else m // mg * cg + rc
        pos = [oi * s + k * d + off for oi, k, s, d, off in zip(o, taps, strides, dilations,
                                                                 offsets)]
        xv = xp[(n, c, *pos)]
        wv = w[(rc, *taps, m)] if ihwo else w[(m, rc, *taps)]
        return rsum(xv.astype(acc) * wv.astype(acc), (rc, *taps))

    return with_bias(compute(out, body, "conv"), b, outs[0].dtype, "conv_bias")


def padded(x: Tensor, taps: Sequence[IterVar], strides: Sequence[int], pads: Sequence[int],
           dilations: Sequence[int], out_sizes: Sequence[int]) -> tuple[Tensor, list[int]]:
    """x zero-padded to cover every window (a stage tagged "pad"), and the offset to add
    to window positions in it; x itself (offsets 0, or negative where the windows stop
    short of x's end) when no window leaves x. Axes after the spatial ones (a channel
    block) are kept."""
    nd = len(taps)
    need = [(out_sizes[i] - 1) * strides[i] + (taps[i].extent - 1) * dilations[i] + 1
            for i in range(nd)]
    size = x.shape[2:2 + nd]
    if all(pads[i] == 0 and need[i] <= size[i] for i in range(nd)):
        return x, [0] * nd
    shape = (*x.shape[:2], *need, *x.shape[2 + nd:])

    def body(n: E.Expr, c: E.Expr, *pt: E.Expr) -> E.Expr:
        p, rest = pt[:nd], pt[nd:]
        pos = [pi - pads[i] for i, pi in enumerate(p)]
        conds = [cd for i, q in enumerate(pos)
                 for cd in ([q >= 0] if pads[i] > 0 else []) + ([q < size[i]]
                                                                if need[i] - pads[i] > size[i]
                                                                else [])]
        value = x[(n, c, *pos, *rest)]
        cond = all_of(conds)
        return value if cond is None else E.select(cond, value, E.as_expr(0, value))

    return compute(shape, body, "conv_pad", tag="pad"), [0] * nd


@conv.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    w = ins[1]
    assert w is not None
    return 2 * outs[0].size * math.prod(oihw_type(w, attrs).shape[1:])


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


def transpose_taps(o: E.Expr, j: IterVar, kernel: int, stride: int, dilation: int,
                   pad_begin: int, size: int, out_size: int
                   ) -> tuple[E.Expr, E.Expr, list[E.Expr]]:
    """The j-th kernel tap k reaching output o of a transposed conv along one axis, the input
    position i it reads, and the conditions for that tap to exist.

    o + pad_begin = i*stride + k*dilation. With g = gcd(dilation, stride), only outputs with
    (o + pad_begin) % g == 0 have taps, and those are k = k0 + j*(stride/g) where k0 solves
    k*(dilation/g) = (o + pad_begin)/g modulo stride/g: iterating j visits only the taps
    that contribute, instead of all `kernel` taps of which 1 in stride/g would.
    """
    g = math.gcd(dilation, stride)
    step, inverse = stride // g, pow(dilation // g, -1, stride // g) if stride > g else 0
    t = o + pad_begin
    conds = [(t % g).eq(0)] if g > 1 else []
    k = (t // g * inverse) % step + j * step if step > 1 else j
    if j.extent * step > kernel:
        conds.append(k < kernel)
    conds.append(t - k * dilation >= 0)
    i = (t - k * dilation) // stride
    if (out_size - 1 + pad_begin) // stride >= size:
        conds.append(i < size)
    return k, i, conds


@conv_transpose.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """Gather form: each output sums, over the input channels of its group, the taps of
    `transpose_taps` that reach it."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    nd = x.rank - 2
    strides, pads, dilations = spatial_attrs(attrs, nd)
    group = int(attrs.get("group", 1))
    cg, mg = x.shape[1] // group, w.shape[1]
    acc = acc_dtype(np.dtype(x.dtype)).name
    out = outs[0].shape
    rc = reduce_axis(cg, "convt.rc")
    kernel = w.shape[2:]
    steps = [s // math.gcd(d, s) for s, d in zip(strides, dilations)]
    js = [reduce_axis(-(-k // st), f"convt.rj{i}") for i, (k, st) in enumerate(zip(kernel, steps))]

    def body(n: E.Expr, m: E.Expr, *o: E.Expr) -> E.Expr:
        c = rc if group == 1 else m // mg * cg + rc
        taps = [transpose_taps(o[i], js[i], kernel[i], strides[i], dilations[i], pads[i],
                               x.shape[2 + i], out[2 + i]) for i in range(nd)]
        xv = x[(n, c, *(i for _, i, _ in taps))].astype(acc)
        wv = w[(c, m if group == 1 else m % mg, *(k for k, _, _ in taps))].astype(acc)
        cond = all_of([cd for _, _, conds in taps for cd in conds])
        term = xv * wv if cond is None else E.select(cond, xv * wv, E.const(0, acc))
        return rsum(term, (rc, *js))

    return with_bias(compute(out, body, "conv_transpose"), b, outs[0].dtype,
                     "conv_transpose_bias")


@conv_transpose.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return 2 * x.size * math.prod(w.shape[1:])

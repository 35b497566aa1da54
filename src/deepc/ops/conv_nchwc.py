"""Convolution in the channel-blocked layout: x[N, C/ic, H, W, ic] and pre-blocked weights
w[O/oc, C/ic, KH, KW, ic, oc] into y[N, O/oc, OH, OW, oc] (`conv_nchwc`).

The output-channel block `oc` is the innermost axis of both the weights and the output, so
a vector of `oc` lanes multiplies one broadcast input scalar: the x86 recipe of TVM's conv.
Depthwise convs (group = C = O) use the same weight rank with C/ic = ic = 1, and the input
is blocked like the output. Other grouped convs keep `group`: output block ob reads the input
blocks of its group, w.shape[1] of them from (ob // (O/oc/group)) * w.shape[1]; groups
narrower than a block are merged first (merge_groups), so a vector never straddles two.
A depthwise conv reads each input pixel for one output channel
block only, so a zero-padded copy of its input would cost as much memory traffic as the conv
itself: it reads x at positions clamped into the image instead, times a 0/1 mask of the taps
that fall in the padding (uniform across the lanes of a block, so it stays vectorized).
Large kernels (9x9) are the exception: their masks cost more than the copy (pad_copy_pays).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import IterVar, Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.conv import padded
from deepc.ops.layout import block_array, unblock_array
from deepc.ops.registry import FusionKind, Op, get_op
from deepc.ops.window import acc_dtype, all_of, spatial_attrs, window_out_shape

conv_nchwc = Op(
    "conv_nchwc", FusionKind.OUT_FUSABLE,
    doc="2-D convolution in blocked layout: x[N,C/ic,H,W,ic], w[O/oc,C/ic,KH,KW,ic,oc] (for "
        "a depthwise conv, group = C: w[C/oc,1,KH,KW,1,oc] and ic = oc), optional bias[O]; "
        "attrs strides, pads, dilations, group")


def weight_to_blocked(w: np.ndarray, ic: int, oc: int, depthwise: bool) -> np.ndarray:
    """OIHW weights [O, C/group, KH, KW] -> [O/oc, C'/ic, KH, KW, ic, oc]."""
    o, c, kh, kw = w.shape
    if depthwise:
        ic = 1
    w6 = w.reshape(o // oc, oc, c // ic, ic, kh, kw)
    return np.ascontiguousarray(w6.transpose(0, 2, 4, 5, 3, 1))


def merge_groups(w: np.ndarray, group: int, oc: int) -> tuple[np.ndarray, int]:
    """OIHW weights of a grouped conv whose groups are narrower than the output block `oc`
    -> the same conv with groups of `oc` outputs each (block-diagonal weights, zeros between
    the original groups) and that group count, so that each output block reads one
    contiguous run of input channels. It multiplies the work by oc / (O / group)."""
    o, cg, kh, kw = w.shape
    per = oc // (o // group)  # original groups in one output block
    merged = np.zeros((o, cg * per, kh, kw), w.dtype)
    for k in range(o):
        start = (k // (o // group)) % per * cg
        merged[k, start:start + cg] = w[k]
    return merged, o // oc


def weight_to_oihw(w: np.ndarray) -> np.ndarray:
    ob, cb, kh, kw, ic, oc = w.shape
    return w.transpose(0, 5, 1, 4, 2, 3).reshape(ob * oc, cb * ic, kh, kw)


def _is_depthwise(x: TensorType, w: TensorType, group: int) -> bool:
    return group > 1 and w.shape[1] == w.shape[4] == 1 and group == x.shape[1] * x.shape[-1]


@conv_nchwc.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    if x.rank != 5 or w.rank != 6 or x.dtype != w.dtype:
        raise ValueError(f"conv_nchwc needs x[N,C/ic,H,W,ic] and w[O/oc,C/ic,KH,KW,ic,oc] of "
                         f"one dtype, got {x} and {w}")
    group = int(attrs.get("group", 1))
    if _is_depthwise(x, w, group):
        if w.shape[0] != x.shape[1] or w.shape[5] != x.shape[4]:
            raise ValueError(f"depthwise weight {w} does not fit input {x}")
    elif (w.shape[4] != x.shape[4] or x.shape[1] % group or w.shape[0] % group
          or w.shape[1] != x.shape[1] // group):
        # a grouped conv: each group's output blocks read its own x.shape[1]/group blocks
        raise ValueError(f"weight {w} does not fit input {x} with group {group}")
    out_c = w.shape[0] * w.shape[5]
    if b is not None and b.shape != (out_c,):
        raise ValueError(f"bias {b} must have shape ({out_c},)")
    out = window_out_shape(x.shape[2:4], w.shape[2:4], attrs)
    return TensorType((x.shape[0], w.shape[0], *out, w.shape[5]), x.dtype)


@conv_nchwc.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    """The plain conv's reference between unblocking and blocking: the spec of this op."""
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    (y,) = get_op("conv").evaluate([unblock_array(x), weight_to_oihw(w), *ins[2:]], attrs)
    return block_array(y, w.shape[5])


@conv_nchwc.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """Reduction axes ordered (input block, taps, input lane) so the lanes of one input
    pixel are read consecutively against the same weight panel."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    assert x is not None and w is not None
    strides, pads, dilations = spatial_attrs(attrs, 2)
    xt, wt = TensorType(x.shape, x.dtype), TensorType(w.shape, w.dtype)
    depthwise = _is_depthwise(xt, wt, int(attrs.get("group", 1)))
    acc = acc_dtype(np.dtype(x.dtype)).name
    out = outs[0].shape
    oc = w.shape[5]
    taps = [reduce_axis(k, f"convc.rk{i}") for i, k in enumerate(w.shape[2:4])]
    if depthwise and not pad_copy_pays(out, taps, strides, pads, dilations):
        y = _depthwise_unpadded(x, w, taps, strides, pads, dilations, out, acc)
        return _with_bias(y, b, outs[0].dtype, oc)
    xp, offsets = padded(x, taps, strides, pads, dilations, out[2:4])
    group = int(attrs.get("group", 1))
    blocks_per_group = w.shape[0] // group  # output blocks; each reads w.shape[1] input blocks
    rcb = None if depthwise else reduce_axis(w.shape[1], "convc.rcb")
    ri = None if depthwise else reduce_axis(w.shape[4], "convc.ri")
    zero = E.const(0, E.INDEX)

    def body(n: E.Expr, ob: E.Expr, oh: E.Expr, ow: E.Expr, oi: E.Expr) -> E.Expr:
        pos = [o * s + k * d + off for o, k, s, d, off in zip((oh, ow), taps, strides,
                                                               dilations, offsets)]
        if rcb is None or ri is None:
            xv, wv = xp[(n, ob, *pos, oi)], w[(ob, zero, *taps, zero, oi)]
            axes = tuple(taps)
        else:
            first = zero if group == 1 else (
                (ob if blocks_per_group == 1 else ob // blocks_per_group) * w.shape[1])
            xv, wv = xp[(n, first + rcb, *pos, ri)], w[(ob, rcb, *taps, ri, oi)]
            axes = (rcb, *taps, ri)
        return rsum(xv.astype(acc) * wv.astype(acc), axes)

    return _with_bias(compute(out, body, "conv_nchwc"), b, outs[0].dtype, oc)


# A masked tap costs one multiply (and two index clamps) per output pixel; a padded copy
# costs one read and one write per padded input pixel, whatever the taps. Masked taps per
# padded input pixel, measured at 1 thread (AVX-512 EPYC): 5x5 at 112x112 (23) and 7x7 at
# 56x56 (40, ConvNeXt) run even either way, 9x9 at 32x32 (52, ConvMixer) runs 1.4x faster
# on the copy; 3x3 convs (7-9) are faster masked. The copy pays from:
_PAD_COPY_TAPS = 44


def pad_copy_pays(out: Sequence[int], taps: Sequence[IterVar], strides: Sequence[int],
                   pads: Sequence[int], dilations: Sequence[int]) -> bool:
    """Whether a depthwise conv is cheaper on a zero-padded copy of x than on masked reads."""
    if not any(pads):
        return False
    need = [(out[2 + i] - 1) * strides[i] + (k.extent - 1) * dilations[i] + 1
            for i, k in enumerate(taps)]
    masked = math.prod(out[2:4]) * math.prod(k.extent for k in taps)
    return masked >= _PAD_COPY_TAPS * math.prod(need)


def _depthwise_unpadded(x: Tensor, w: Tensor, taps: Sequence[IterVar],
                        strides: Sequence[int], pads: Sequence[int],
                        dilations: Sequence[int], out: Sequence[int], acc: str) -> Tensor:
    """sum over taps of x[clamp(pos)] * mask(pos) * w: no padded copy (module docstring).
    A tap in the padding reads a border pixel and multiplies it by 0."""
    zero = E.const(0, E.INDEX)
    size = x.shape[2:4]

    def body(n: E.Expr, ob: E.Expr, oh: E.Expr, ow: E.Expr, oi: E.Expr) -> E.Expr:
        idx, conds = [], []
        for i, (o, k) in enumerate(zip((oh, ow), taps)):
            pos = o * strides[i] + k * dilations[i] - pads[i]
            low = pads[i] > 0
            high = (out[2 + i] - 1) * strides[i] + (k.extent - 1) * dilations[i] - pads[i] \
                >= size[i]
            if low:
                conds.append(pos >= 0)
                pos = E.maximum(pos, 0)
            if high:
                conds.append(pos < size[i])
                pos = E.minimum(pos, size[i] - 1)
            idx.append(pos)
        xv = x[(n, ob, *idx, oi)].astype(acc)
        wv = w[(ob, zero, *taps, zero, oi)].astype(acc)
        cond = all_of(conds)
        if cond is not None:
            wv = wv * E.select(cond, E.const(1, acc), E.const(0, acc))
        return rsum(xv * wv, tuple(taps))

    return compute(tuple(out), body, "conv_nchwc")


def _with_bias(y: Tensor, b: Tensor | None, dtype: str, oc: int) -> Tensor:
    if b is None and y.dtype == dtype:
        return y

    def epilogue(n: E.Expr, ob: E.Expr, oh: E.Expr, ow: E.Expr, oi: E.Expr) -> E.Expr:
        v = y[(n, ob, oh, ow, oi)]
        return (v if b is None else v + b[ob * oc + oi].astype(v.dtype)).astype(dtype)

    return compute(y.shape, epilogue, "conv_nchwc_bias")


@conv_nchwc.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    w = ins[1]
    assert w is not None
    return 2 * outs[0].size * math.prod(w.shape[1:5])

"""deform_conv: 2-D convolution whose taps are moved by learned offsets and scaled by a mask.

x[N, C, H, W], w[M, C/group, kH, kW], offset[N, G*kH*kW*2, oH, oW] (per offset group G, tap
and output pixel: dy then dx), optional bias[M] and mask[N, G*kH*kW, oH, oW]. Tap (i, j) of
output (p, q) samples x bilinearly at (p*sh - pad_top + i*dh + dy, q*sw - pad_left + j*dw +
dx), a sample outside the image reading 0 (onnx's reference: GridSample, zeros padding,
align_corners). Attrs strides, pads, dilations, group, offset_group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.conv import with_bias
from deepc.ops.registry import FusionKind, Op

deform_conv = Op("deform_conv", FusionKind.OPAQUE,
                 doc="2-D deformable convolution x, w, offset[, bias[, mask]]; attrs strides, "
                     "pads, dilations, group, offset_group")


def _attrs(attrs: Attrs) -> tuple[list[int], list[int], list[int], int, int]:
    return (list(attrs.get("strides") or (1, 1)), list(attrs.get("pads") or (0, 0, 0, 0)),
            list(attrs.get("dilations") or (1, 1)), int(attrs.get("group", 1)),
            int(attrs.get("offset_group", 1)))


@deform_conv.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w, offset = ins[0], ins[1], ins[2]
    assert x is not None and w is not None and offset is not None
    _, _, _, group, groups = _attrs(attrs)
    taps = w.shape[2] * w.shape[3] if w.rank == 4 else 0
    if x.rank != 4 or w.rank != 4 or x.shape[1] != w.shape[1] * group or x.shape[1] % groups \
            or offset.shape[:2] != (x.shape[0], groups * taps * 2):
        raise ValueError(f"x {x}, w {w} and offset {offset} do not fit group {group} and "
                         f"offset_group {groups}")
    return TensorType((x.shape[0], w.shape[0], *offset.shape[2:]), x.dtype)


def _np_sample(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bilinear samples of img[H, W] at (y, x), taps outside reading 0."""
    height, width = img.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    out = np.zeros(y.shape, np.float64)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        yy, xx = y0 + dy, x0 + dx
        weight = (1 - np.abs(y - yy)) * (1 - np.abs(x - xx))
        ok = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        out += np.where(ok, weight * img[np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)],
                        0)
    return out


@deform_conv.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, w, offset = ins[0], ins[1], ins[2]
    bias = ins[3] if len(ins) > 3 else None
    mask = ins[4] if len(ins) > 4 else None
    assert x is not None and w is not None and offset is not None
    strides, pads, dilations, group, groups = _attrs(attrs)
    n, c = x.shape[:2]
    m, cg, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    off = offset.reshape(n, groups, kh, kw, 2, oh, ow)
    scale = np.ones((n, groups, kh, kw, oh, ow)) if mask is None else \
        mask.reshape(n, groups, kh, kw, oh, ow)
    base_y = (np.arange(oh) * strides[0] - pads[0])[:, None]
    base_x = (np.arange(ow) * strides[1] - pads[1])[None, :]
    cols = np.zeros((n, c, kh, kw, oh, ow))
    for b in range(n):
        for ch in range(c):
            g = ch // (c // groups)
            for i in range(kh):
                for j in range(kw):
                    y = base_y + i * dilations[0] + off[b, g, i, j, 0]
                    xx = base_x + j * dilations[1] + off[b, g, i, j, 1]
                    cols[b, ch, i, j] = _np_sample(x[b, ch], y, xx) * scale[b, g, i, j]
    out = np.zeros((n, m, oh, ow))
    mg = m // group
    for g in range(group):
        out[:, g * mg:(g + 1) * mg] = np.einsum(
            "nckhpq,mckh->nmpq", cols[:, g * cg:(g + 1) * cg], w[g * mg:(g + 1) * mg])
    if bias is not None:
        out += bias.reshape(1, m, 1, 1)
    return out.astype(x.dtype)


@deform_conv.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, w, offset = ins[0], ins[1], ins[2]
    bias = ins[3] if len(ins) > 3 else None
    mask = ins[4] if len(ins) > 4 else None
    strides, pads, dilations, group, groups = _attrs(attrs)
    c, (height, width) = x.shape[1], x.shape[2:]
    m, cg, kh, kw = w.shape
    mg, per_group = m // group, c // groups
    acc = "float64" if x.dtype == "float64" else "float32"
    rc, ri, rj = reduce_axis(cg, "dconv.c"), reduce_axis(kh, "dconv.i"), reduce_axis(kw, "dconv.j")

    def body(n: E.Var, o: E.Var, p: E.Var, q: E.Var) -> E.Expr:
        ch = o // mg * cg + rc
        g = ch // per_group
        tap = (g * kh + ri) * kw + rj
        y = (p * strides[0] - pads[0] + ri * dilations[0]).astype(acc) \
            + offset[(n, tap * 2, p, q)].astype(acc)
        xx = (q * strides[1] - pads[1] + rj * dilations[1]).astype(acc) \
            + offset[(n, tap * 2 + 1, p, q)].astype(acc)
        y0, x0 = E.call("floor", y), E.call("floor", xx)
        sample: E.Expr | None = None
        for dy in (0, 1):
            for dx in (0, 1):
                yy, xc = y0 + dy, x0 + dx
                weight = (1 - E.call("fabs", y - yy)) * (1 - E.call("fabs", xx - xc))
                yi, xi = yy.astype("int64"), xc.astype("int64")
                ok = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
                at = (n, ch, E.minimum(E.maximum(yi, E.as_expr(0, yi)), E.as_expr(height - 1, yi)),
                      E.minimum(E.maximum(xi, E.as_expr(0, xi)), E.as_expr(width - 1, xi)))
                term = E.select(ok, weight * x[at].astype(acc), E.const(0, acc))
                sample = term if sample is None else sample + term
        assert sample is not None
        if mask is not None:
            sample = sample * mask[(n, tap, p, q)].astype(acc)
        return rsum(sample * w[(o, rc, ri, rj)].astype(acc), (rc, ri, rj))

    y = compute(outs[0].shape, body, "deform_conv")
    return with_bias(y, bias, outs[0].dtype, "deform_conv_bias")

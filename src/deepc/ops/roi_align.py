"""roi_align: x[N, C, H, W] pooled over regions rois[R, 4] (x1, y1, x2, y2, scaled by
spatial_scale) of images batch_indices[R] -> out[R, C, output_height, output_width].

Each output bin averages (or takes the max of) a sampling_ratio x sampling_ratio grid of
bilinear samples; as in onnx's reference, a sample beyond one pixel outside the image reads
0, one past the last row or column reads that row or column, and `max` takes the largest
of the four weighted corner values. Attrs: mode (avg, max), output_height, output_width,
sampling_ratio (> 0), spatial_scale, half_pixel (the coordinate transformation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rmax, rsum
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

roi_align = Op("roi_align", FusionKind.OPAQUE,
               doc="bilinear region pooling of x[N,C,H,W] over rois[R,4] of images "
                   "batch_indices[R]; attrs mode, output_height, output_width, sampling_ratio, "
                   "spatial_scale, half_pixel")


@roi_align.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, rois, idx = ins[0], ins[1], ins[2]
    assert x is not None and rois is not None and idx is not None
    if x.rank != 4 or rois.shape != (idx.shape[0], 4) or idx.rank != 1:
        raise ValueError(f"needs x[N,C,H,W], rois[R,4] and batch_indices[R], got {x}, {rois}, "
                         f"{idx}")
    if int(attrs["sampling_ratio"]) < 1:
        raise ValueError("sampling_ratio 0 (a grid sized per region) is not supported")
    return TensorType((rois.shape[0], x.shape[1], int(attrs["output_height"]),
                       int(attrs["output_width"])), x.dtype)


def _box(column: Any, attrs: Attrs, axis: int, bins: int) -> tuple[Any, Any]:
    """(start, bin size) of the regions along axis 0 (y: roi columns 1 and 3) or 1 (x:
    columns 0 and 2); `column(k)` reads roi column k (numpy arrays or expressions)."""
    offset = 0.5 if attrs["half_pixel"] else 0.0
    scale = float(attrs["spatial_scale"])
    start = column(1 - axis) * scale - offset
    extent = column(3 - axis) * scale - offset - start
    if not attrs["half_pixel"]:
        extent = (np.maximum(extent, 1.0) if isinstance(extent, np.ndarray)
                  else E.maximum(extent, E.as_expr(1.0, extent)))
    return start, extent / bins


# -- numpy reference ----------------------------------------------------------------------------
def _np_axis(start: np.ndarray, step: np.ndarray, bins: int, grid: int, size: int
             ) -> tuple[np.ndarray, ...]:
    """[R, bins, grid] low and high pixel, fraction and inside flag along one axis."""
    b = np.arange(bins)[:, None]
    g = np.arange(grid)[None, :]
    start, step = start[:, None, None], step[:, None, None]
    v = start + b * step + (g + 0.5) * step / grid
    inside = (v >= -1.0) & (v <= size)
    v = np.maximum(v, 0)
    low = v.astype(np.int64)
    last = low >= size - 1
    low = np.where(last, size - 1, low)
    v = np.where(last, low, v)
    return low, np.where(last, low, low + 1), v - low, inside


@roi_align.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, rois, idx = ins[0], ins[1].astype(np.float64), ins[2]
    oh, ow = int(attrs["output_height"]), int(attrs["output_width"])
    grid = int(attrs["sampling_ratio"])
    height, width = x.shape[2:]
    y0, y1, ly, yin = _np_axis(*_box(lambda k: rois[:, k], attrs, 0, oh), oh, grid, height)
    x0, x1, lx, xin = _np_axis(*_box(lambda k: rois[:, k], attrs, 1, ow), ow, grid, width)

    def yb(a: np.ndarray) -> np.ndarray:  # [R, oh, g] -> [R, oh, g, 1, 1]
        return a[:, :, :, None, None]

    def xb(a: np.ndarray) -> np.ndarray:  # [R, ow, g] -> [R, 1, 1, ow, g]
        return a[:, None, None, :, :]

    r = np.arange(len(idx))[:, None, None, None, None]
    img = x[idx]  # [R, C, H, W]
    inside = (yb(yin) & xb(xin))[:, None]
    corners = [(y0, x0, 1 - ly, 1 - lx), (y0, x1, 1 - ly, lx), (y1, x0, ly, 1 - lx),
               (y1, x1, ly, lx)]
    terms = [np.where(inside, (yb(wy) * xb(wx))[:, None]
                      * np.moveaxis(img[r, :, yb(ya), xb(xa)], -1, 1), 0)
             for ya, xa, wy, wx in corners]  # each [R, C, oh, g, ow, g]
    if attrs["mode"] == "max":
        out = np.maximum.reduce(terms).max(axis=(3, 5))
    else:
        out = np.sum(terms, axis=0).sum(axis=(3, 5)) / (grid * grid)
    return out.astype(x.dtype)


# -- compute --------------------------------------------------------------------------------
def _axis(start: E.Expr, step: E.Expr, b: E.Expr, g: E.Expr, grid: int, size: int
          ) -> tuple[E.Expr, E.Expr, E.Expr, E.Expr]:
    v = start + b.astype(start.dtype) * step + (g.astype(start.dtype) + 0.5) * step / grid
    inside = (v >= E.const(-1.0, v.dtype)) & (v <= E.const(size, v.dtype))
    v = E.maximum(v, E.const(0, v.dtype))
    low = v.astype("int64")
    last = low >= size - 1
    low = E.select(last, E.as_expr(size - 1, low), low)
    v = E.select(last, low.astype(v.dtype), v)
    return low, E.select(last, low, low + 1), v - low.astype(v.dtype), inside


@roi_align.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, rois, idx = ins[0], ins[1], ins[2]
    oh, ow = int(attrs["output_height"]), int(attrs["output_width"])
    grid = int(attrs["sampling_ratio"])
    height, width = x.shape[2:]
    acc = "float64" if x.dtype == "float64" else "float32"
    gy, gx = reduce_axis(grid, "roi_align.gy"), reduce_axis(grid, "roi_align.gx")

    def body(r: E.Var, c: E.Var, ph: E.Var, pw: E.Var) -> E.Expr:
        def column(k: int) -> E.Expr:
            return rois[(r, k)].astype(acc)

        y0, y1, ly, yin = _axis(*_box(column, attrs, 0, oh), ph, gy, grid, height)
        x0, x1, lx, xin = _axis(*_box(column, attrs, 1, ow), pw, gx, grid, width)
        n = idx[(r,)].astype("int64")
        one = E.const(1, acc)
        corners = [(y0, x0, one - ly, one - lx), (y0, x1, one - ly, lx),
                   (y1, x0, ly, one - lx), (y1, x1, ly, lx)]
        terms = [x[(n, c, ya, xa)].astype(acc) * (wy * wx) for ya, xa, wy, wx in corners]
        zero = E.const(0, acc)
        if attrs["mode"] == "max":
            best = terms[0]
            for t in terms[1:]:
                best = E.maximum(best, t)
            return rmax(E.select(yin & xin, best, zero), (gy, gx))
        total = terms[0] + terms[1] + terms[2] + terms[3]
        return rsum(E.select(yin & xin, total, zero), (gy, gx))

    pooled = compute(outs[0].shape, body, "roi_align.pool")
    if attrs["mode"] == "max":
        return compute(outs[0].shape, lambda *o: pooled[o].astype(outs[0].dtype), "roi_align")
    return compute(outs[0].shape,
                   lambda *o: (pooled[o] / (grid * grid)).astype(outs[0].dtype), "roi_align")

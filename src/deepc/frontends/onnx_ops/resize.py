"""ONNX Resize (opsets 10-19+) and Upsample (opsets 7-9) to `resize` with a static output shape;
GridSample (opsets 16 and 20) to `grid_sample`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.frontends.onnx_ops.shape import axis_of, const_ints

f32 = np.float32


def _floats(b: GraphBuilder, n: OnnxNode, index: int, what: str) -> list[float] | None:
    """An optional constant float input; absent and empty inputs are both None."""
    name = n.input(index)
    if not name:
        return None
    value = np.asarray(b.require_const(name, what, n.name), dtype=np.float32).reshape(-1)
    return [float(v) for v in value] if value.size else None


def _sizes_from_scales(dims: Sequence[int], scales: Sequence[float]) -> list[int]:
    """floor(dim * scale) as a float32 product, as onnxruntime computes it (floor(0.7f * 10)
    is 7, not 6). Like onnxruntime and onnx's shape inference, and unlike the operator text,
    the roi extent of tf_crop_and_resize does not scale the size."""
    return [int(np.floor(f32(d) * f32(s))) for d, s in zip(dims, scales)]


def _scales_from_sizes(dims: Sequence[int], sizes: Sequence[int]) -> list[float]:
    # the exact ratio (in float64): coordinates then land exactly on ties such as 3.5
    return [o / d if d else 1.0 for d, o in zip(dims, sizes)]


def _emit(b: GraphBuilder, n: OnnxNode, shape: Sequence[int], scales: Sequence[float],
          **attrs: object) -> None:
    rank = len(shape)
    full = {"roi": (0.0,) * rank + (1.0,) * rank, "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "simple", "cubic_coeff_a": -0.75, "exclude_outside": 0,
            "extrapolation_value": 0.0, "antialias": 0, **attrs}
    b.emit("resize", n.inputs[:1], {"shape": tuple(shape), "scales": tuple(scales), **full},
           outputs=n.outputs, name=n.name)


def _legacy(b: GraphBuilder, n: OnnxNode, scales: Sequence[float]) -> None:
    """Upsample and Resize-10: asymmetric coordinates, sizes floor(dim * scale)."""
    dims = b.type(n.inputs[0]).shape
    if len(scales) != len(dims):
        raise ConversionError(f"node {n.name!r} ({n.op_type}): {len(scales)} scales for rank "
                              f"{len(dims)}")
    mode = str(n.attr("mode", "nearest"))
    mode = "linear" if mode == "bilinear" else mode
    _emit(b, n, _sizes_from_scales(dims, scales), scales, mode=mode)


@converter("Upsample")
def upsample(b: GraphBuilder, n: OnnxNode) -> None:
    """Scales are an attribute in opset 7, an input from opset 9."""
    if n.opset < 9:
        scales = [float(s) for s in n.attr("scales")]
    else:
        scales = _floats(b, n, 1, "scales") or []
    _legacy(b, n, scales)


@converter("Resize")
def resize(b: GraphBuilder, n: OnnxNode) -> None:
    """From opset 11: roi, scales and sizes inputs; from 18: axes, antialias and
    keep_aspect_ratio_policy; 19 adds half_pixel_symmetric."""
    if n.opset < 11:
        _legacy(b, n, _floats(b, n, 1, "scales") or [])
        return
    dims = b.type(n.inputs[0]).shape
    rank = len(dims)
    roi, scales = _floats(b, n, 1, "roi"), _floats(b, n, 2, "scales")
    sizes = const_ints(b, n.input(3), "sizes", n) if n.input(3) else None
    axes = [axis_of(int(a), rank, n) for a in n.attr("axes", range(rank))]
    coord = str(n.attr("coordinate_transformation_mode", "half_pixel"))
    count = len(axes)
    if (scales is None) == (sizes is None):
        raise ConversionError(f"node {n.name!r} (Resize): give exactly one of scales and sizes")
    if any(len(v) != count for v in (scales, sizes) if v is not None) or (
            roi is not None and len(roi) != 2 * count):
        raise ConversionError(f"node {n.name!r} (Resize): scales, sizes and roi must match the "
                              f"{count} resized axes")

    full_roi = [0.0] * rank + [1.0] * rank
    if roi is not None and coord == "tf_crop_and_resize":
        for i, a in enumerate(axes):
            full_roi[a], full_roi[a + rank] = roi[i], roi[i + count]
    full_scales = [1.0] * rank
    shape = list(dims)
    if scales is not None:
        picked = _sizes_from_scales([dims[a] for a in axes], scales)
        for i, a in enumerate(axes):
            full_scales[a], shape[a] = scales[i], picked[i]
    else:
        assert sizes is not None
        ratios = _scales_from_sizes([dims[a] for a in axes], sizes)
        policy = str(n.attr("keep_aspect_ratio_policy", "stretch"))
        if policy != "stretch":
            if policy not in ("not_larger", "not_smaller"):
                raise ConversionError(f"node {n.name!r} (Resize): keep_aspect_ratio_policy "
                                      f"{policy!r} is unknown")
            one = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [one] * count
            # the spec rounds half up: round(scale * dim)
            sizes = [int(np.floor(f32(one) * f32(dims[a]) + f32(0.5))) for a in axes]
        for i, a in enumerate(axes):
            full_scales[a], shape[a] = ratios[i], sizes[i]
    _emit(b, n, shape, full_scales, roi=tuple(full_roi), mode=str(n.attr("mode", "nearest")),
          coordinate_transformation_mode=coord,
          nearest_mode=str(n.attr("nearest_mode", "round_prefer_floor")),
          cubic_coeff_a=float(n.attr("cubic_coeff_a", -0.75)),
          exclude_outside=int(n.attr("exclude_outside", 0)),
          extrapolation_value=float(n.attr("extrapolation_value", 0.0)),
          antialias=int(n.attr("antialias", 0)))


GRID_MODES = {"bilinear": "linear", "bicubic": "cubic"}  # the opset-16 names


@converter("GridSample")
def grid_sample(b: GraphBuilder, n: OnnxNode) -> None:
    mode = str(n.attr("mode", "linear" if n.opset >= 20 else "bilinear"))
    attrs = {"mode": GRID_MODES.get(mode, mode),
             "padding_mode": str(n.attr("padding_mode", "zeros")),
             "align_corners": int(n.attr("align_corners", 0))}
    b.emit("grid_sample", n.inputs[:2], attrs, outputs=n.outputs, name=n.name)

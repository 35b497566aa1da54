"""ONNX pooling ops: MaxPool, AveragePool, LpPool, their Global* forms, MaxUnpool and RoiAlign."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter, direct
from deepc.frontends.onnx_ops.conv import auto_pad, resolve_pads, spatial_ints


def window_attrs(b: GraphBuilder, n: OnnxNode) -> dict[str, Any]:
    """kernel_shape, strides, dilations, explicit pads and ceil_mode of a pooling node."""
    in_shape = b.type(n.inputs[0]).shape[2:]
    nd = len(in_shape)
    if n.attr("kernel_shape") is None:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): kernel_shape is required")
    kernel = spatial_ints(n, "kernel_shape", nd, 1)
    strides = spatial_ints(n, "strides", nd, 1)
    dilations = spatial_ints(n, "dilations", nd, 1)
    ceil_mode = int(n.attr("ceil_mode", 0))
    if ceil_mode and auto_pad(n) != "NOTSET":
        # SAME and VALID fix the output size themselves; ceil_mode cannot change it
        ceil_mode = 0
    return {"kernel_shape": kernel, "strides": strides, "dilations": dilations,
            "pads": resolve_pads(n, in_shape, kernel, strides, dilations),
            "ceil_mode": ceil_mode}


@converter("MaxPool")
def max_pool(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = window_attrs(b, n)
    b.emit("max_pool", n.inputs[:1], attrs, outputs=n.outputs[:1], name=n.name)
    if len(n.outputs) > 1 and n.outputs[1]:
        b.emit("max_pool_indices", n.inputs[:1],
               {**attrs, "storage_order": int(n.attr("storage_order", 0))},
               outputs=n.outputs[1:2], name=n.name)


@converter("AveragePool")
def avg_pool(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {**window_attrs(b, n), "count_include_pad": int(n.attr("count_include_pad", 0))}
    b.emit("avg_pool", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("LpPool")
def lp_pool(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {**window_attrs(b, n), "p": int(n.attr("p", 2))}
    b.emit("lp_pool", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


direct("GlobalAveragePool", "global_avg_pool")
direct("GlobalMaxPool", "global_max_pool")
direct("GlobalLpPool", "global_lp_pool", {"p": ("p", 2)})


@converter("MaxUnpool")
def max_unpool(b: GraphBuilder, n: OnnxNode) -> None:
    """Zeros of the unpooled shape with each value written at its flat index (a 1-D
    scatter_elements over the flattened tensors); a larger `output_shape` pads the end of
    each axis, as onnx's reference does."""
    x, indices = n.inputs[:2]
    xt = b.type(x)
    nd = xt.rank - 2
    kernel = tuple(int(k) for k in n.attr("kernel_shape"))
    strides = spatial_ints(n, "strides", nd, 1)
    pads = tuple(int(p) for p in (n.attr("pads") or (0,) * (2 * nd)))
    shape = (*xt.shape[:2], *((xt.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i]
                              - pads[nd + i] for i in range(nd)))
    target = shape
    if n.input(2):
        target = tuple(int(v) for v in b.require_const(n.input(2), "MaxUnpool output_shape",
                                                        n.name))
    zeros = b.add_constant(np.zeros(int(np.prod(shape)), xt.dtype))
    flat_x = b.emit1("reshape", [x], {"shape": (xt.size,)}, name=n.name)
    flat_i = b.emit1("reshape", [indices], {"shape": (xt.size,)}, name=n.name)
    out = b.emit1("scatter_elements", [zeros, flat_i, flat_x], {"axis": 0, "reduction": "none"},
                  name=n.name)
    if target == shape:
        b.emit("reshape", [out], {"shape": shape}, outputs=n.outputs, name=n.name)
        return
    out = b.emit1("reshape", [out], {"shape": shape}, name=n.name)
    ends = tuple(t - s for t, s in zip(target, shape))
    b.emit("pad", [out], {"pads": (0,) * len(shape) + ends, "mode": "constant", "value": 0.0},
           outputs=n.outputs, name=n.name)


@converter("RoiAlign")
def roi_align(b: GraphBuilder, n: OnnxNode) -> None:
    """Before opset 16 there is no coordinate_transformation_mode and pixels are not shifted
    by half (output_half_pixel); from 16 half_pixel is the default."""
    default = "half_pixel" if n.opset >= 16 else "output_half_pixel"
    attrs = {"mode": str(n.attr("mode", "avg")), "output_height": int(n.attr("output_height", 1)),
             "output_width": int(n.attr("output_width", 1)),
             "sampling_ratio": int(n.attr("sampling_ratio", 0)),
             "spatial_scale": float(n.attr("spatial_scale", 1.0)),
             "half_pixel": int(n.attr("coordinate_transformation_mode", default) == "half_pixel")}
    b.emit("roi_align", n.inputs[:3], attrs, outputs=n.outputs, name=n.name)

"""ONNX quantisation ops: QuantizeLinear, DequantizeLinear and the integer and QLinear forms of
MatMul and Conv (translated as dequantize -> float op -> quantize, or int32 arithmetic)."""

from __future__ import annotations

from onnx import helper

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.frontends.onnx_ops.conv import conv_attrs
from deepc.ir.types import dtype_name
from deepc.ops.common import normalize_axis

FLOAT = "float32"


def _dtype_attr(n: OnnxNode, key: str) -> str | None:
    code = int(n.attr(key, 0) or 0)
    return dtype_name(helper.tensor_dtype_to_np_dtype(code)) if code else None


def _q_attrs(b: GraphBuilder, n: OnnxNode) -> dict[str, int]:
    """`axis` matters only for per-axis or blocked parameters (a scalar scale may come with
    the default axis 1 on a vector)."""
    per_tensor = b.type(n.inputs[1]).size == 1
    axis = 0 if per_tensor else normalize_axis(int(n.attr("axis", 1)), b.type(n.inputs[0]).rank)
    return {"axis": axis, "block_size": int(n.attr("block_size", 0))}


def quantize(b: GraphBuilder, x: str, scale: str, zero: str, to: str, axis: int = 0, *,
             name: str = "", outputs: tuple[str, ...] | None = None) -> str:
    inputs = [x, scale, *([zero] if zero else [])]
    return b.emit("quantize_linear", inputs, {"axis": axis, "block_size": 0, "to": to},
                  outputs=outputs, name=name)[0]


def dequantize(b: GraphBuilder, x: str, scale: str, zero: str, axis: int = 0,
               name: str = "") -> str:
    """x as float32, with per-tensor or per-`axis` parameters."""
    inputs = [x, scale, *([zero] if zero else [])]
    return b.emit1("dequantize_linear", inputs, {"axis": axis, "block_size": 0, "to": FLOAT},
                   name=name)


@converter("QuantizeLinear")
def quantize_linear(b: GraphBuilder, n: OnnxNode) -> None:
    """The output type is the zero point's, else `output_dtype` (opset 21), else uint8."""
    zero = n.input(2)
    to = b.type(zero).dtype if zero else _dtype_attr(n, "output_dtype") or "uint8"
    attrs = {**_q_attrs(b, n), "to": to}
    b.emit("quantize_linear", [i for i in n.inputs if i], attrs, outputs=n.outputs, name=n.name)


@converter("DequantizeLinear")
def dequantize_linear(b: GraphBuilder, n: OnnxNode) -> None:
    """The output type is `output_dtype` (opset 23), else the scale's."""
    to = _dtype_attr(n, "output_dtype") or b.type(n.inputs[1]).dtype
    attrs = {**_q_attrs(b, n), "to": to}
    # Kept as a node even on constants: the fold_qdq pass reads the integer weights and
    # their scales from it (the `fold` pass folds what it leaves).
    b.emit("dequantize_linear", [i for i in n.inputs if i], attrs, outputs=n.outputs,
           name=n.name, fold=False)


def _int32_minus(b: GraphBuilder, x: str, zero: str, axis: int, name: str) -> str:
    """x - zero_point in int32; a vector zero point runs along `axis` (negative: from the end)."""
    y = b.emit1("cast", [x], {"to": "int32"}, name=name)
    if not zero:
        return y
    z = b.emit1("cast", [zero], {"to": "int32"}, name=name)
    zt = b.type(zero)
    if zt.rank == 1 and zt.size > 1 and axis != -1:
        z = b.emit1("reshape", [z], {"shape": (zt.size, *(1,) * (-axis - 1))}, name=name)
    return b.emit1("sub", [y, z], name=name)


@converter("MatMulInteger")
def matmul_integer(b: GraphBuilder, n: OnnxNode) -> None:
    """int32 (a - a_zero_point) @ (b - b_zero_point); a's zero point is per row, b's per
    column."""
    a = _int32_minus(b, n.inputs[0], n.input(2), -2, n.name)
    w = _int32_minus(b, n.inputs[1], n.input(3), -1, n.name)
    b.emit("matmul", [a, w], outputs=n.outputs, name=n.name)


@converter("ConvInteger")
def conv_integer(b: GraphBuilder, n: OnnxNode) -> None:
    """int32 conv of (x - x_zero_point) and (w - w_zero_point) (w's per output channel)."""
    attrs = conv_attrs(b, n, n.inputs[0], n.inputs[1])
    wrank = b.type(n.inputs[1]).rank
    x = _int32_minus(b, n.inputs[0], n.input(2), -1, n.name)
    w = _int32_minus(b, n.inputs[1], n.input(3), -wrank, n.name)
    b.emit("conv", [x, w], attrs, outputs=n.outputs, name=n.name)


@converter("QLinearMatMul")
def qlinear_matmul(b: GraphBuilder, n: OnnxNode) -> None:
    """Dequantized a (per row) @ dequantized b (per column), requantized per column."""
    a, a_scale, a_zero, w, w_scale, w_zero, y_scale, y_zero = n.inputs[:8]
    ra, rw = b.type(a).rank, b.type(w).rank
    x = dequantize(b, a, a_scale, a_zero, ra - 2, n.name)
    y = b.emit1("matmul", [x, dequantize(b, w, w_scale, w_zero, rw - 1, n.name)], name=n.name)
    quantize(b, y, y_scale, y_zero, b.type(y_zero).dtype, b.type(y).rank - 1, name=n.name,
             outputs=n.outputs)


@converter("QLinearConv")
def qlinear_conv(b: GraphBuilder, n: OnnxNode) -> None:
    """Dequantized x conv dequantized w (per output channel) plus the int32 bias at scale
    x_scale * w_scale, requantized."""
    x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero = n.inputs[:8]
    attrs = conv_attrs(b, n, x, w)
    inputs = [dequantize(b, x, x_scale, x_zero, 1, n.name),
              dequantize(b, w, w_scale, w_zero, 0, n.name)]
    if n.input(8):
        bias_scale = b.emit1("mul", [b.emit1("cast", [x_scale], {"to": FLOAT}, name=n.name),
                                     b.emit1("cast", [w_scale], {"to": FLOAT}, name=n.name)],
                             name=n.name)
        inputs.append(dequantize(b, n.input(8), bias_scale, "", 0, n.name))
    y = b.emit1("conv", inputs, attrs, name=n.name)
    quantize(b, y, y_scale, y_zero, b.type(y_zero).dtype, 1, name=n.name, outputs=n.outputs)

"""ONNX Softmax, LogSoftmax and Hardmax, including the 2-D coercion of opsets before 13."""

from __future__ import annotations

from math import prod

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axis

OPS = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Hardmax": "hardmax"}


@converter(*OPS)
def along_axis(b: GraphBuilder, n: OnnxNode) -> None:
    """From opset 13 the op works along one axis (default -1). Before, the input is seen as
    a matrix [prod(shape[:axis]), prod(shape[axis:])] (default axis 1) and the op works along
    its rows; that is one `reshape` either side unless axis is already the last one."""
    op, x = OPS[n.op_type], n.inputs[0]
    shape = b.type(x).shape
    new = n.opset >= 13
    axis = normalize_axis(int(n.attr("axis", -1 if new else 1)), len(shape))
    if new or axis == len(shape) - 1:
        b.emit(op, [x], {"axis": axis}, outputs=n.outputs, name=n.name)
        return
    matrix = b.emit1("reshape", [x], {"shape": (prod(shape[:axis]), prod(shape[axis:]))},
                     name=n.name)
    y = b.emit1(op, [matrix], {"axis": 1}, name=n.name)
    b.emit("reshape", [y], {"shape": shape}, outputs=n.outputs, name=n.name)

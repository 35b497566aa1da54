"""ONNX TopK: k is an attribute before opset 10 and a (constant) input from opset 10."""

from __future__ import annotations

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axis


@converter("TopK")
def topk(b: GraphBuilder, n: OnnxNode) -> None:
    if n.opset < 10:
        k = int(n.attr("k"))
    else:
        k = int(np.asarray(b.require_const(n.inputs[1], "TopK k", n.name)).reshape(-1)[0])
    attrs = {"k": k, "axis": normalize_axis(n.attr("axis", -1), b.type(n.inputs[0]).rank),
             "largest": int(n.attr("largest", 1)), "sorted": int(n.attr("sorted", 1))}
    b.emit("topk", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)

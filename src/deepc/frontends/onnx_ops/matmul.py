"""ONNX MatMul, Gemm, Einsum and Det."""

from __future__ import annotations

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter, direct

direct("MatMul", "matmul")
direct("Einsum", "einsum", {"equation": ("equation", None)})


@converter("Gemm")
def gemm(b: GraphBuilder, n: OnnxNode) -> None:
    """C is optional from opset 11; an omitted C is simply not an input."""
    inputs = [n.inputs[0], n.inputs[1], *([n.input(2)] if n.input(2) else [])]
    attrs = {"alpha": float(n.attr("alpha", 1.0)), "beta": float(n.attr("beta", 1.0)),
             "trans_a": int(n.attr("transA", 0)), "trans_b": int(n.attr("transB", 0))}
    b.emit("gemm", inputs, attrs, outputs=n.outputs, name=n.name)


direct("Det", "det")

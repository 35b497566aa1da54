"""ONNX DFT: the signal axis (an attribute before opset 20, an input from it) and the
transform length resolved to attributes of the `dft` op."""

from __future__ import annotations

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axis


def _scalar(b: GraphBuilder, n: OnnxNode, i: int, what: str) -> int | None:
    name = n.input(i)
    if not name:
        return None
    return int(np.asarray(b.require_const(name, f"DFT {what}", n.name)).reshape(-1)[0])


@converter("DFT")
def dft(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    axis = _scalar(b, n, 2, "axis") if n.opset >= 20 else None
    if axis is None:
        axis = int(n.attr("axis", -2 if n.opset >= 20 else 1))
    axis = normalize_axis(axis, x.rank)
    inverse, onesided = int(n.attr("inverse", 0)), int(n.attr("onesided", 0))
    length = _scalar(b, n, 1, "dft_length")
    if length is None:
        length = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    attrs = {"axis": axis, "length": length, "inverse": inverse, "onesided": onesided}
    b.emit("dft", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)

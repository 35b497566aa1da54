"""ONNX ai.onnx.ml operators over numeric tensors: Binarizer and ArrayFeatureExtractor."""

from __future__ import annotations

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter

DOMAIN = "ai.onnx.ml."


@converter(DOMAIN + "Binarizer")
def binarizer(b: GraphBuilder, n: OnnxNode) -> None:
    """1 where x > threshold, else 0, in x's type."""
    x = n.inputs[0]
    dtype = b.type(x).dtype
    above = b.emit1("greater", [x, b.add_constant(np.array(n.attr("threshold", 0.0), dtype))],
                    name=n.name)
    b.emit("cast", [above], {"to": dtype}, outputs=n.outputs, name=n.name)


@converter(DOMAIN + "ArrayFeatureExtractor")
def array_feature_extractor(b: GraphBuilder, n: OnnxNode) -> None:
    """The features at the given indices of x's last axis; a vector x gives a [1, k] row."""
    x, indices = n.inputs[:2]
    xt = b.type(x)
    if xt.rank == 1:
        x = b.emit1("reshape", [x], {"shape": (1, xt.shape[0])}, name=n.name)
    flat = b.emit1("reshape", [indices], {"shape": (b.type(indices).size,)}, name=n.name)
    b.emit("gather", [x, flat], {"axis": max(xt.rank, 2) - 1}, outputs=n.outputs, name=n.name)

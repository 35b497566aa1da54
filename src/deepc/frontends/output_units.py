"""A quantised ONNX model's outputs -> the quantisation scale each is dequantised with: what
"within one unit" means when its outputs are compared with onnxruntime's."""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

# ops between the last DequantizeLinear and an output that keep its unit: an error of one
# unit in their input is at most one unit in their output
_KEEP_UNIT = frozenset({"AveragePool", "GlobalAveragePool", "MaxPool", "GlobalMaxPool",
                        "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
                        "Relu"})


def output_units(model: str | os.PathLike[str] | onnx.ModelProto) -> list[float | None]:
    """Per graph output (in order), the largest scale of the DequantizeLinear that makes it,
    through ops that keep the unit (squeezenet's int8 graph ends in a pool); None for an
    output that no DequantizeLinear makes so directly (compare it as floats)."""
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    inits = {t.name: t for t in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    units: list[float | None] = []
    for out in proto.graph.output:
        node = producer.get(out.name)
        while node is not None and node.op_type in _KEEP_UNIT:
            node = producer.get(node.input[0])
        unit = None
        if node is not None and node.op_type == "DequantizeLinear":
            scale = inits.get(node.input[1])
            if scale is not None:
                unit = float(np.max(numpy_helper.to_array(scale)))
        units.append(unit)
    return units

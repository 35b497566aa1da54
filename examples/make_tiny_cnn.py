"""Build examples/tiny_cnn.onnx: the small built-in model `make demo` compiles and checks.

A conv-net in the shape of the real ones (conv + batch norm + ReLU, a residual block, a
depthwise conv, pooling, a classifier), seeded random weights, opset 17.
Run: python3 examples/make_tiny_cnn.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(2026)
inits: list[onnx.TensorProto] = []
nodes: list[onnx.NodeProto] = []


def weight(name: str, *shape: int, scale: float = 0.2) -> str:
    inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
    return name


def conv_bn_relu(x: str, name: str, cin: int, cout: int, k: int, stride: int = 1,
                 group: int = 1, relu: bool = True) -> str:
    w = weight(f"{name}.w", cout, cin // group, k, k)
    nodes.append(helper.make_node("Conv", [x, w], [f"{name}.conv"], pads=[k // 2] * 4,
                                  strides=[stride] * 2, group=group, name=f"{name}/Conv"))
    bn = [weight(f"{name}.{p}", cout, scale=0.1) for p in ("scale", "bias", "mean")]
    inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, cout).astype(np.float32), f"{name}.var"))
    nodes.append(helper.make_node("BatchNormalization", [f"{name}.conv", *bn, f"{name}.var"],
                                  [f"{name}.bn"], name=f"{name}/BatchNorm"))
    if not relu:
        return f"{name}.bn"
    nodes.append(helper.make_node("Relu", [f"{name}.bn"], [f"{name}.out"], name=f"{name}/Relu"))
    return f"{name}.out"


x = conv_bn_relu("input", "stem", 3, 16, 3, stride=2)
nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[2, 2], strides=[2, 2],
                              name="pool/MaxPool"))
y = conv_bn_relu("pool", "block.a", 16, 16, 3)
y = conv_bn_relu(y, "block.b", 16, 16, 3, relu=False)
nodes.append(helper.make_node("Add", ["pool", y], ["res"], name="block/Add"))
nodes.append(helper.make_node("Relu", ["res"], ["res.relu"], name="block/Relu"))
z = conv_bn_relu("res.relu", "dw", 16, 16, 3, group=16)
z = conv_bn_relu(z, "pw", 16, 32, 1)
nodes.append(helper.make_node("GlobalAveragePool", [z], ["gap"], name="head/GlobalAveragePool"))
nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], name="head/Flatten"))
nodes.append(helper.make_node("Gemm", ["flat", weight("fc.w", 10, 32), weight("fc.b", 10)],
                              ["logits"], transB=1, name="head/Gemm"))
nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="head/Softmax"))

graph = helper.make_graph(
    nodes, "tiny_cnn",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
    [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
    initializer=inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                          producer_name="deepc-examples")
onnx.checker.check_model(model)
onnx.save(model, Path(__file__).with_name("tiny_cnn.onnx"))

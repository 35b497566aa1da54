"""A quantised model's outputs are compared within one unit of the scale that dequantises
them (what #24 asks of int8 bundles against onnxruntime); float outputs at rtol/atol."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from deepc.bench import outputs_match
from deepc.frontends.output_units import output_units


def qdq_model(tail: str) -> object:
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.25])
    zero = helper.make_tensor("z", TensorProto.UINT8, [], [128])
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
             helper.make_node(tail, ["d"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[scale, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_units_follow_ops_that_keep_them_and_stop_at_others() -> None:
    assert output_units(qdq_model("GlobalAveragePool")) == [0.25]
    assert output_units(qdq_model("Relu")) == [0.25]
    assert output_units(qdq_model("Softmax")) == [None]  # a float op: compared as floats


def test_one_unit_matches_and_two_do_not() -> None:
    want = [np.array([1.0, 2.0, 3.0], np.float32)]
    for off, ok in ((0.25, True), (0.5, False)):
        got = {"y": want[0] + np.array([0, off, 0], np.float32)}
        assert outputs_match(got, want, units=[0.25]) is ok
        assert outputs_match(got, want) is False  # as floats, both are off

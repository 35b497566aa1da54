"""Sequence ops resolved on import into tensor ops, compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from deepc.errors import ConversionError
from tests.helpers import run_compute, run_deepc, run_ort

F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits=()):  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sequence_ops_become_tensor_ops():
    nodes = [
        helper.make_node("SplitToSequence", ["x"], ["parts"], axis=1),
        helper.make_node("SequenceConstruct", ["x", "x"], ["pair"]),
        helper.make_node("SequenceInsert", ["pair", "y", "at"], ["three"]),
        helper.make_node("SequenceErase", ["three"], ["two"]),
        helper.make_node("ConcatFromSequence", ["two"], ["cat"], axis=0, new_axis=1),
        helper.make_node("SequenceAt", ["parts", "last"], ["piece"]),
        helper.make_node("SequenceLength", ["parts"], ["count"]),
    ]
    vi = helper.make_tensor_value_info
    inits = [helper.make_tensor("at", TensorProto.INT64, [], [0]),
             helper.make_tensor("last", TensorProto.INT64, [], [-1])]
    model = _model(nodes, [vi("x", F, [2, 3]), vi("y", F, [2, 3])],
                   [vi("cat", F, None), vi("piece", F, None),
                    vi("count", TensorProto.INT64, None)], inits)
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32),
             "y": rng.standard_normal((2, 3)).astype(np.float32)}
    for run in (run_deepc, lambda m, f: run_compute(m, f, compiled=True)):
        for got, want in zip(run(model, feeds), run_ort(model, feeds)):
            np.testing.assert_array_equal(got, want)


def test_a_sequence_output_is_refused():
    vi = helper.make_tensor_value_info
    out = helper.make_tensor_sequence_value_info("s", F, None)
    model = _model([helper.make_node("SequenceConstruct", ["x"], ["s"])],
                   [vi("x", F, [2])], [out])
    with pytest.raises(ConversionError, match="sequence"):
        run_deepc(model, {"x": np.zeros(2, np.float32)})

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


def test_optionals_holding_tensors_are_those_tensors():
    """Optional(x) is x; OptionalHasElement says whether an input was given (a graph input
    typed optional(tensor) is fed a tensor)."""
    vi = helper.make_tensor_value_info
    opt = helper.make_value_info("o", helper.make_optional_type_proto(
        helper.make_tensor_type_proto(F, [3])))
    nodes = [helper.make_node("Optional", ["x"], ["wrapped"]),
             helper.make_node("OptionalGetElement", ["wrapped"], ["y"]),
             helper.make_node("OptionalGetElement", ["o"], ["z"]),
             helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("OptionalHasElement", [], ["none"])]
    graph = helper.make_graph(nodes, "g", [vi("x", F, [3]), opt],
                              [vi("y", F, [3]), vi("z", F, [3]), vi("has", TensorProto.BOOL, []),
                               vi("none", TensorProto.BOOL, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    feeds = {"x": rng.standard_normal(3).astype(np.float32),
             "o": rng.standard_normal(3).astype(np.float32)}
    y, z, has, none = run_compute(model, feeds, compiled=True)
    np.testing.assert_array_equal(y, feeds["x"])
    np.testing.assert_array_equal(z, feeds["o"])
    assert bool(has) and not bool(none)

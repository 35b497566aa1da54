"""Scan unrolled and If resolved on import, compared with onnxruntime."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from deepc.errors import NeedsConstantError
from tests.helpers import run_compute, run_deepc, run_ort

rng = np.random.default_rng(0)
F = TensorProto.FLOAT


def _scan_model(reverse: int) -> tuple:
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
         helper.make_node("Mul", ["s_out", "w"], ["y_t"])],  # w: captured from outside
        "body", [helper.make_tensor_value_info("s_in", F, [3]),
                 helper.make_tensor_value_info("x_t", F, [3])],
        [helper.make_tensor_value_info("s_out", F, [3]),
         helper.make_tensor_value_info("y_t", F, [3])])
    node = helper.make_node("Scan", ["s0", "x"], ["s", "y"], body=body, num_scan_inputs=1,
                            scan_input_directions=[reverse], scan_output_axes=[1])
    w = helper.make_tensor("w", F, [3], [1.0, -2.0, 0.5])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("s0", F, [3]),
                                            helper.make_tensor_value_info("x", F, [4, 3])],
                              [helper.make_tensor_value_info("s", F, [3]),
                               helper.make_tensor_value_info("y", F, [3, 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("compiled", [None, True])
def test_scan_is_unrolled(reverse, compiled):
    model = _scan_model(reverse)
    feeds = {"s0": rng.standard_normal(3).astype(np.float32),
             "x": rng.standard_normal((4, 3)).astype(np.float32)}
    run = run_deepc if compiled is None else lambda m, f: run_compute(m, f, compiled=True)
    for got, want in zip(run(model, feeds), run_ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def _if_model(cond_is_constant: bool) -> tuple:
    def branch(op: str) -> object:
        return helper.make_graph([helper.make_node(op, ["x", "x"], ["r"])], op, [],
                                 [helper.make_tensor_value_info("r", F, [2])])

    node = helper.make_node("If", ["c"], ["y"], then_branch=branch("Add"),
                            else_branch=branch("Mul"))
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    inits = [helper.make_tensor("c", TensorProto.BOOL, [], [False])] if cond_is_constant else []
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, [2])]
                              + ([] if cond_is_constant else [c]),
                              [helper.make_tensor_value_info("y", F, [2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_if_with_a_constant_condition_takes_its_branch():
    x = np.array([3.0, -1.5], np.float32)
    model = _if_model(cond_is_constant=True)
    np.testing.assert_allclose(run_deepc(model, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_if_with_a_run_time_condition_asks_for_it_as_a_constant():
    x = np.array([3.0, -1.5], np.float32)
    with pytest.raises(NeedsConstantError) as err:
        run_deepc(_if_model(cond_is_constant=False), {"x": x, "c": np.array(True)})
    assert err.value.value == "c"


def _loop_model(trip: int) -> tuple:
    body = helper.make_graph(
        [helper.make_node("Identity", ["c_in"], ["c_out"]),
         helper.make_node("Cast", ["i"], ["i_f"], to=F),
         helper.make_node("Add", ["y_in", "i_f"], ["y_out"]),
         helper.make_node("Mul", ["y_out", "y_out"], ["sq"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("y_in", F, [2])],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", F, [2]),
         helper.make_tensor_value_info("sq", F, [2])])
    node = helper.make_node("Loop", ["m", "c", "y"], ["y_last", "squares"], body=body)
    inits = [helper.make_tensor("m", TensorProto.INT64, [], [trip]),
             helper.make_tensor("c", TensorProto.BOOL, [], [True])]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("y", F, [2])],
                              [helper.make_tensor_value_info("y_last", F, [2]),
                               helper.make_tensor_value_info("squares", F, [trip, 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("compiled", [None, True])
def test_loop_with_a_constant_trip_count_is_unrolled(compiled):
    model = _loop_model(4)
    feeds = {"y": np.array([0.5, -1.0], np.float32)}
    run = run_deepc if compiled is None else lambda m, f: run_compute(m, f, compiled=True)
    for got, want in zip(run(model, feeds), run_ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-6)

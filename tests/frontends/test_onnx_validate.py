"""Validation on import: each malformed model is one ModelError (exit 2) naming the fault, and
the CLI says so in one line; odd but valid models (nodes out of order, long chains) load."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deepc.errors import DeepcNotice, FixedDimReplaced, ModelError, ShapeError
from deepc.frontends.onnx import convert, declared_inputs
from deepc.ops.interpreter import run_graph
from tests.test_cli import assert_one_line_error, run


def _vi(name: str, elem: int = TensorProto.FLOAT, shape: tuple = (1, 4)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], inits: tuple = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def relu(x: str = "x", y: str = "y", name: str = "r") -> onnx.NodeProto:
    return helper.make_node("Relu", [x], [y], name=name)


def _corrupt_op(m: onnx.ModelProto) -> bytes:
    data = bytearray(m.SerializeToString())
    data[data.find(b"Relu") + 1] = 0xFF  # not UTF-8: protobuf hands back bytes
    return bytes(data)


def _short_weights(m: onnx.ModelProto) -> onnx.ModelProto:
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-4]
    return m


W = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
MALFORMED: dict[str, tuple[Callable[[], onnx.ModelProto | bytes], str]] = {
    "duplicated output": (lambda: _model([relu()], [_vi("x")], [_vi("y"), _vi("y")]),
                          "listed twice"),
    "output nobody makes": (lambda: _model([relu()], [_vi("x")], [_vi("y"), _vi("z")]),
                            "'z' is produced by no node"),
    "cycle": (lambda: _model([helper.make_node("Add", ["x", "b"], ["a"], name="add"),
                              relu("a", "b")], [_vi("x")], [_vi("a")]), "cycle"),
    "string input": (lambda: _model([helper.make_node("Identity", ["x"], ["y"])],
                                    [_vi("x", TensorProto.STRING)],
                                    [_vi("y", TensorProto.STRING)]), "string tensors"),
    "unknown dtype": (lambda: _model([relu()], [_vi("x", 99)], [_vi("y")]), "element type 99"),
    "huge dims": (lambda: _model([relu()], [_vi("x", shape=(2**40, 2**40))], [_vi("y")]),
                  "more than deepc addresses"),
    "corrupted op type": (lambda: _corrupt_op(_model([relu()], [_vi("x")], [_vi("y")])),
                          "not valid text"),
    "undefined input": (lambda: _model([relu("q")], [_vi("x")], [_vi("y")]), "reads 'q'"),
    "two writers": (lambda: _model([relu(), relu(name="r2")], [_vi("x")], [_vi("y")]),
                    "already defined"),
    "duplicated initializer": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                              [_vi("x")], [_vi("y")], (W, W)), "listed twice"),
    "short weights": (lambda: _short_weights(_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x")], [_vi("y")], (W,))),
        "truncated or corrupted"),
    "wrong arity": (lambda: _model([helper.make_node("Add", ["x"], ["y"])], [_vi("x")],
                                   [_vi("y")]), "takes 2"),
    "unknown attribute": (lambda: _model([helper.make_node("Relu", ["x"], ["y"], axes=[1])],
                                         [_vi("x")], [_vi("y")]), "'axes'"),
    "type constraint": (lambda: _model([helper.make_node("Tanh", ["x"], ["y"])],
                                       [_vi("x", TensorProto.INT32)], [_vi("y")]),
                        "tensor(int32)"),
    "mixed types": (lambda: _model([helper.make_node("MatMul", ["x", "w"], ["y"])],
                                   [_vi("x", TensorProto.DOUBLE)], [_vi("y")], (W,)),
                    "must have one type"),
    "output type": (lambda: _model([relu()], [_vi("x")], [_vi("y", TensorProto.INT64)]),
                    "declared tensor(int64)"),
    "huge intermediate": (lambda: _model(
        [helper.make_node("Expand", ["x", "s"], ["y"])], [_vi("x", shape=(1, 1))], [_vi("y")],
        (numpy_helper.from_array(np.array([2**20, 2**20], np.int64), "s"),)),
        "1048576x1048576"),
    "future opset": (lambda: helper.make_model(
        helper.make_graph([relu()], "g", [_vi("x")], [_vi("y")]),
        opset_imports=[helper.make_opsetid("", 999)]), "opset 999"),
}


def _write(make: Callable[[], onnx.ModelProto | bytes], path: Path) -> Path:
    made = make()
    path.write_bytes(made if isinstance(made, bytes) else made.SerializeToString())
    return path


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_model_is_one_line_exit_2(tmp_path: Path, kind: str) -> None:
    make, needle = MALFORMED[kind]
    model = _write(make, tmp_path / "bad.onnx")
    code, _, err = run("compile", str(model), "-o", str(tmp_path / "out.tar"))
    assert_one_line_error(code, err, 2, needle)
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.tar").exists()


def test_malformed_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="listed twice"):
        convert(MALFORMED["duplicated output"][0]())  # type: ignore[arg-type]


def test_nodes_out_of_order_are_sorted() -> None:
    m = _model([relu("a", "y", "second"), relu("x", "a", "first")], [_vi("x")], [_vi("y")])
    graph = convert(m)
    x = np.array([[-1, 2, -3, 4]], np.float32)
    np.testing.assert_array_equal(run_graph(graph, {"x": x})["y"], np.maximum(x, 0))


def test_long_chain_compiles(tmp_path: Path) -> None:
    """Past Python's recursion limit: fused groups are capped, the walks are iterative."""
    n = 3000
    nodes = [relu("x" if i == 0 else f"t{i}", "y" if i == n - 1 else f"t{i + 1}", f"r{i}")
             for i in range(n)]
    model = _write(lambda: _model(nodes, [_vi("x")], [_vi("y")]), tmp_path / "chain.onnx")
    code, _, err = run("compile", str(model), "-o", str(tmp_path / "chain.tar"))
    assert code == 0, err


def test_fixed_dimension_replaced_warns_and_cli_refuses(tmp_path: Path) -> None:
    m = _model([relu()], [_vi("x", shape=(1, 4))], [_vi("y", shape=(1, 4))])
    with pytest.warns(FixedDimReplaced, match="dimension 0 is fixed at 1, not 3"):
        assert convert(m, {"x": (3, 4)}).types["x"].shape == (3, 4)
    with pytest.raises(ShapeError, match="gives 1 dimensions"):
        convert(m, {"x": (4,)})
    model = _write(lambda: m, tmp_path / "fixed.onnx")
    code, _, err = run("compile", str(model), "-o", str(tmp_path / "o.tar"), "--input-shape",
                       "x:3x4")
    assert_one_line_error(code, err, 2, "fixed at 1, not 3")


def test_symbolic_dimension_gets_a_note(tmp_path: Path) -> None:
    m = _model([relu()], [_vi("x", shape=("N", 4))], [_vi("y", shape=("N", 4))])
    with pytest.warns(DeepcNotice, match="symbolic dimension N set to 1"):
        convert(m)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert(m, {"x": (5, 4)}).types["x"].shape == (5, 4)
    model = _write(lambda: m, tmp_path / "sym.onnx")
    code, _, err = run("compile", str(model), "-o", str(tmp_path / "o.tar"))
    assert code == 0 and err.startswith("note: input 'x': symbolic dimension N set to 1")
    assert declared_inputs(model) == {"x": (None, 4)}

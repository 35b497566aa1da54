"""lookup and quantized_add through the reference, the compute definition and the LLVM
backend; quantized_add against onnxruntime's own QLinearAdd kernel, and broadcast."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.frontends.builder import GraphBuilder
from deepc.ir.graph import Graph
from deepc.ir.types import TensorType
from deepc.ops.quant_glue import quantized_add_params
from tests.helpers import run_ort

rng = np.random.default_rng(24)


def _runner(way: str):  # type: ignore[no-untyped-def]
    from deepc.compiler.jit_graph import run_graph_jit
    from deepc.lowering.te_graph import run_graph_te
    from deepc.ops.interpreter import run_graph

    return {"reference": run_graph, "compute": run_graph_te, "compiled": run_graph_jit}[way]


def _graph(op: str, inputs: dict[str, np.ndarray], constants: list[np.ndarray],
           **attrs: object) -> Graph:
    b = GraphBuilder(op)
    names = [b.add_input(k, TensorType(v.shape, v.dtype.name)) for k, v in inputs.items()]
    names += [b.add_constant(c) for c in constants]
    b.outputs = [b.emit(op, names, attrs, fold=False)[0]]
    return b.build()


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("way", ["reference", "compute", "compiled"])
def test_lookup_reads_each_byte_s_entry(way: str, dtype: str) -> None:
    x = rng.integers(-128 if dtype == "int8" else 0, 128 if dtype == "int8" else 256,
                     (2, 3, 17)).astype(dtype)
    table = rng.standard_normal(256).astype(np.float32)
    graph = _graph("lookup", {"x": x}, [table])
    got = _runner(way)(graph, {"x": x})[graph.outputs[0]]
    offset = 128 if dtype == "int8" else 0
    np.testing.assert_array_equal(got, table[x.astype(np.int64) + offset])


def _qlinear_add(a: np.ndarray, b: np.ndarray, params: tuple) -> np.ndarray:
    """onnxruntime's com.microsoft QLinearAdd on a and b."""
    names = ["sa", "za", "sb", "zb", "sy", "zy"]
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names, params)]
    node = helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"],
                            ["y"], domain="com.microsoft")
    t = onnx.TensorProto.UINT8
    graph = helper.make_graph([node], "qadd", [helper.make_tensor_value_info("a", t, a.shape),
                                              helper.make_tensor_value_info("b", t, b.shape)],
                              [helper.make_tensor_value_info("y", t, a.shape)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("com.microsoft", 1)])
    return run_ort(model, {"a": a, "b": b})[0]


# a test's scales, and the encoder's first residual add (one byte pair there, 56 + 90, tells
# onnxruntime's contracted fma in the fixed term from two roundings)
ADD_PARAMS = [(0.031, 117, 0.0123, 3, 0.047, 90),
              (0.034616496, 121, 0.0017557989, 128, 0.034838986, 122)]


@pytest.mark.parametrize("params", ADD_PARAMS)
@pytest.mark.parametrize("way", ["reference", "compute", "compiled"])
def test_quantized_add_is_onnxruntime_s_qlinear_add(way: str, params: tuple) -> None:
    """Its AVX2 kernel's two fused multiply-adds, to the bit (ties and saturation included)."""
    pairs = np.divmod(np.arange(65536), 256)  # every pair of bytes
    a, b = (p.astype(np.uint8).reshape(2, 128, 256) for p in pairs)
    ra, rb, fixed = quantized_add_params(*params)
    graph = _graph("quantized_add", {"a": a, "b": b}, [], ratio_a=float(ra), ratio_b=float(rb),
                   fixed=float(fixed), to="uint8")
    got = _runner(way)(graph, {"a": a, "b": b})[graph.outputs[0]]
    f, u = np.float32, np.uint8
    want = _qlinear_add(a, b, tuple(f(v) if k % 2 == 0 else u(v) for k, v in enumerate(params)))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("way", ["reference", "compiled"])
def test_quantized_add_broadcasts_a_bias(way: str) -> None:
    """A bias quantised as an activation, one byte per channel, added to every row."""
    a = rng.integers(0, 256, 64).astype(np.uint8)
    b = rng.integers(0, 256, (3, 5, 64)).astype(np.uint8)
    ra, rb, fixed = quantized_add_params(*ADD_PARAMS[1])
    graph = _graph("quantized_add", {"a": a, "b": b}, [], ratio_a=float(ra), ratio_b=float(rb),
                   fixed=float(fixed), to="uint8")
    got = _runner(way)(graph, {"a": a, "b": b})[graph.outputs[0]]
    full = _graph("quantized_add", {"a": np.broadcast_to(a, b.shape).copy(), "b": b}, [],
                  ratio_a=float(ra), ratio_b=float(rb), fixed=float(fixed), to="uint8")
    np.testing.assert_array_equal(
        got, _runner("reference")(full, {"a": np.broadcast_to(a, b.shape).copy(), "b": b})[
            full.outputs[0]])

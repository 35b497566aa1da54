"""qdq_glue: the float ops between QDQ pairs (relu, max_pool, SiLU, add, concat and channel
shuffles) become int8 ops, with onnxruntime's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import deepc
from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext
from deepc.passes.manager import SIMPLIFY
from deepc.passes.verify import verify_graph
from tests.helpers import run_ort

RNG = np.random.default_rng(24)
SHAPE = (1, 4, 9, 9)


def _q(name: str, scale: float, zero: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """name -> Q -> DQ -> name_d at (scale, zero), uint8."""
    inits = [numpy_helper.from_array(np.float32(scale), f"{name}_s"),
             numpy_helper.from_array(np.uint8(zero), f"{name}_z")]
    nodes = [helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
             helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                              [f"{name}_d"])]
    return nodes, inits


def _model(case: str, out_scale: float = 0.02) -> tuple[onnx.ModelProto,
                                                       dict[str, np.ndarray]]:
    inputs = ["a", "b"] if case in ("add", "shuffle") else ["a"]
    nodes, inits = [], []
    for name, (s, z) in zip(inputs, [(0.031, 117), (0.047, 30)]):
        n, i = _q(name, s, z)
        nodes += n
        inits += i
    if case == "relu_pool":
        nodes += [helper.make_node("Relu", ["a_d"], ["r"]),
                  helper.make_node("MaxPool", ["r"], ["f"], kernel_shape=[3, 3], strides=[2, 2],
                                   pads=[1, 1, 1, 1])]
    elif case == "pool_ceil":  # squeezenet's: the last window hangs over the end
        nodes += [helper.make_node("MaxPool", ["a_d"], ["f"], kernel_shape=[2, 2],
                                   strides=[2, 2], ceil_mode=1)]
    elif case == "depthwise":  # mobilenet's stride-2 one: an int32 conv at column stride 1
        w = RNG.integers(-127, 128, (4, 1, 3, 3)).astype(np.int8)
        inits += [numpy_helper.from_array(w, "w"),
                  numpy_helper.from_array((RNG.random(4) * 0.01 + 0.002).astype(np.float32),
                                          "ws"),
                  numpy_helper.from_array(np.zeros(4, np.int8), "wz")]
        nodes += [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
                  helper.make_node("Conv", ["a_d", "wd"], ["f"], group=4, strides=[2, 2],
                                   pads=[1, 1, 1, 1])]
    elif case == "silu":
        nodes += [helper.make_node("Sigmoid", ["a_d"], ["sig"]),
                  helper.make_node("Mul", ["a_d", "sig"], ["f"])]
    elif case == "add":
        nodes += [helper.make_node("Add", ["a_d", "b_d"], ["f"])]
    elif case == "softmax":
        nodes += [helper.make_node("Softmax", ["a_d"], ["f"], axis=-1)]
    elif case == "bias_add":  # a bias quantised as an activation, one byte per column
        inits += [numpy_helper.from_array(RNG.integers(0, 256, 9).astype(np.uint8), "c"),
                  numpy_helper.from_array(np.float32(0.0123), "c_s"),
                  numpy_helper.from_array(np.uint8(3), "c_z")]
        nodes += [helper.make_node("DequantizeLinear", ["c", "c_s", "c_z"], ["c_d"]),
                  helper.make_node("Add", ["c_d", "a_d"], ["f"])]
    elif case == "gelu":  # the encoder's: erf's bytes + 1 quantized, times x, halved
        n, i = _q("erf", 0.0079, 128)
        one, i1 = _q("one", 0.0079, 0)
        inits += [*i, *i1, numpy_helper.from_array(np.float32(1.4142135), "sqrt2"),
                  numpy_helper.from_array(np.float32(1.0), "one"),
                  numpy_helper.from_array(np.float32(0.5), "half")]
        nodes += [helper.make_node("Div", ["a_d", "sqrt2"], ["d"]),
                  helper.make_node("Erf", ["d"], ["erf"]), *n, *one,
                  helper.make_node("Add", ["erf_d", "one_d"], ["p1"]),
                  *_q("p1", 0.0157, 0)[0],
                  helper.make_node("Mul", ["a_d", "p1_d"], ["m"]),
                  helper.make_node("Mul", ["m", "half"], ["f"])]
        inits += _q("p1", 0.0157, 0)[1]
    else:  # shufflenet's: concat, channel shuffle, the second half
        inits += [numpy_helper.from_array(np.array([1, 2, 4, 9, 9], np.int64), "s1"),
                  numpy_helper.from_array(np.array([1, 8, 9, 9], np.int64), "s2"),
                  numpy_helper.from_array(np.array([4], np.int64), "lo"),
                  numpy_helper.from_array(np.array([8], np.int64), "hi"),
                  numpy_helper.from_array(np.array([1], np.int64), "ax")]
        nodes += [helper.make_node("Concat", ["a_d", "b_d"], ["c"], axis=1),
                  helper.make_node("Reshape", ["c", "s1"], ["r1"]),
                  helper.make_node("Transpose", ["r1"], ["t"], perm=[0, 2, 1, 3, 4]),
                  helper.make_node("Reshape", ["t", "s2"], ["r2"]),
                  helper.make_node("Slice", ["r2", "lo", "hi", "ax"], ["f"])]
    n, i = _q("f", out_scale, 12)
    nodes += n
    inits += i
    graph = helper.make_graph(
        nodes, case, [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, SHAPE)
                      for x in inputs],
        [helper.make_tensor_value_info("f_d", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, {x: (RNG.standard_normal(SHAPE) * 3).astype(np.float32) for x in inputs}


def _glued(model: onnx.ModelProto, feeds: dict[str, np.ndarray],  # type: ignore[no-untyped-def]
           target=None):
    graph = convert(model, {k: v.shape for k, v in feeds.items()})
    ctx = PassContext(target=target)
    for name in ["fold_qdq", *SIMPLIFY, "qdq_glue"]:
        graph = verify_graph(PASSES[name](graph, ctx))
    return graph


# onnxruntime's sigmoid is MLAS's rational approximation: one unit off at rare rounding ties
# and its erf is MLAS's polynomial: GELU's bytes likewise
CASES = {"relu_pool": 0, "pool_ceil": 0, "depthwise": 0, "silu": 1, "add": 0, "shuffle": 0,
         "softmax": 0, "bias_add": 0, "gelu": 1}


@pytest.mark.parametrize("case", list(CASES))
def test_glue_stays_int8_between_quantize_and_dequantize(case: str) -> None:
    model, feeds = _model(case)
    graph = _glued(model, feeds)
    floats = {n.op for n in graph.nodes
              if any(graph.types[o].dtype == "float32" for o in n.outputs if o)}
    assert floats == {"dequantize_linear"}, [n.op for n in graph.nodes]
    want = run_ort(model, feeds)[0]
    diff = np.abs(run_graph(graph, feeds)["f_d"] - want)
    assert diff.max() <= CASES[case] * 0.02 * 1.0001


@pytest.mark.parametrize("case", list(CASES))
def test_glue_compiles_to_the_same_bytes(case: str, tmp_path: Path) -> None:
    model, feeds = _model(case)
    path = tmp_path / f"{case}.onnx"
    onnx.save(model, str(path))
    got = deepc.load(deepc.compile(path, "host").save(tmp_path / f"{case}.tar")).run(feeds)
    np.testing.assert_array_equal(got["f_d"], run_graph(_glued(model, feeds), feeds)["f_d"])


def test_silu_of_one_scale_is_one_table() -> None:
    """x * sigmoid(x) of a dequantized x, quantized: one lookup, the sigmoid's own float
    table gone with the float values."""
    model, feeds = _model("silu")
    ops = [n.op for n in _glued(model, feeds).nodes]
    assert ops.count("lookup") == 1 and "sigmoid" not in ops and "mul" not in ops


def test_byte_permute_targets_keep_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Where tables are vpermi2b permutes (AVX-512 VBMI) a table a requantize reproduces
    stays a table: a permute per 64 bytes beats widening them to float and back."""
    from deepc.target import load_target

    spec = tmp_path / "vbmi.toml"
    spec.write_text('name = "vbmi"\ninherit = "x86_64-avx512"\n[isa]\nfeatures = ["+avx", '
                    '"+avx2", "+fma", "+avx512f", "+avx512bw", "+avx512vl", "+avx512vbmi"]\n')
    model, feeds = _model("relu_pool", 0.0213)
    for target, function in ((load_target("x86_64-avx512"), "requantize"),
                             (load_target(str(spec)), "lookup")):
        graph = _glued(model, feeds, target)
        ops = [n.op for n in graph.nodes]
        assert function in ops and ({"lookup", "requantize"} - {function}).pop() not in ops
        np.testing.assert_array_equal(run_graph(graph, feeds)["f_d"], run_ort(model, feeds)[0])


@pytest.mark.parametrize(("out_scale", "function"), [(0.0213, "requantize"), (0.02, "lookup")])
def test_relu_at_a_new_scale_pools_bytes_then_maps_them(out_scale: float, function: str) -> None:
    """Q(max_pool(relu(DQ(x)))) at another scale: the bytes pool first (the function is
    nondecreasing), then the function: a requantize where it gives every entry of the table,
    a lookup where (x - zx) * (0.031 / 0.02) meets exact ties that the float division of
    dequantize then quantize rounds the other way."""
    model, feeds = _model("relu_pool", out_scale)
    graph = _glued(model, feeds)
    ops = [n.op for n in graph.nodes]
    other = ({"lookup", "requantize"} - {function}).pop()
    assert function in ops and other not in ops and "relu" not in ops
    assert ops.index("max_pool") < ops.index(function)
    pool = next(n for n in graph.nodes if n.op == "max_pool")
    assert graph.types[pool.inputs[0]].dtype == "uint8"
    assert pool.attrs["strides"] == (2, 1) and "slice" in ops
    np.testing.assert_array_equal(run_graph(graph, feeds)["f_d"], run_ort(model, feeds)[0])


def test_softmax_is_onnxruntime_s_qlinear_softmax(tmp_path: Path) -> None:
    """Q(softmax(DQ(x))) is onnxruntime's QLinearSoftmax (ops/quant_softmax.py), not the
    float softmax quantized: at an output scale of 1 / 200.5 its factor floor(1 / scale) =
    200 alone moves bytes of the float result by up to a unit."""
    model, feeds = _model("softmax", 1 / 200.5)
    graph = _glued(model, feeds)
    ops = [n.op for n in graph.nodes]
    assert "quantized_softmax" in ops and "softmax" not in ops
    want = run_ort(model, feeds)[0]
    np.testing.assert_array_equal(run_graph(graph, feeds)["f_d"], want)
    path = tmp_path / "softmax.onnx"
    onnx.save(model, str(path))
    got = deepc.load(deepc.compile(path, "host").save(tmp_path / "softmax.tar")).run(feeds)
    np.testing.assert_array_equal(got["f_d"], want)


def test_constant_bias_add_is_a_quantized_add() -> None:
    """A bias's dequantize is still a dequantize when the add's quantize folds (fold would
    make it a float constant first): onnxruntime's QLinearAdd of its bytes, broadcast."""
    model, feeds = _model("bias_add")
    graph = _glued(model, feeds)
    add = next(n for n in graph.nodes if n.op == "quantized_add")
    assert graph.types[add.inputs[0]].shape == (9,) and add.inputs[0] in graph.constants


def test_gelu_with_a_quantized_add_of_one_is_one_table() -> None:
    """The encoder's GELU: its erf + 1 is a QLinearAdd of a constant, which the table of x's
    bytes takes in rather than stopping at (one lookup, no float op left)."""
    model, feeds = _model("gelu")
    ops = [n.op for n in _glued(model, feeds).nodes]
    assert ops.count("lookup") == 1 and not {"erf", "mul", "quantized_add"} & set(ops)

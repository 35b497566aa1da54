"""fold_qdq: QDQ conv/matmul/gemm chains become int32 ops + requantize, and the integer
results equal onnxruntime's (which runs such chains as QLinearConv/QLinearMatMul/QGemm)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.frontends.onnx import convert
from deepc.frontends.output_units import output_units
from deepc.ir.graph import Graph
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext
from deepc.passes.verify import verify_graph
from tests.helpers import run_ort

RNG = np.random.default_rng(5)
SX, ZX = np.float32(0.031), np.uint8(117)
SY, ZY = np.float32(0.047), np.uint8(3)


def _qdq_model(kind: str, relu: bool | str, pixels: int = 9, channels: int = 16,
              conv: dict | None = None) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> Q -> DQ -> {conv | matmul | gemm}(DQ(w int8 per channel), DQ(bias int32)) ->
    [relu] -> Q -> DQ -> y, as onnxruntime's quantisation tool writes it; `conv` overrides
    the conv's attributes (3x3 windows, padding 1) and may name its input channels."""
    if kind == "conv":
        kw = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3], **(conv or {})}
        inputs = kw.pop("channels", 8)
        x_shape, w_shape, axis = (1, inputs, pixels, pixels), (channels, inputs, *kw[
            "kernel_shape"]), 0
    elif kind == "matmul":  # `pixels` stands for the output columns
        x_shape, w_shape, axis, kw = (2, 5, 12), (12, pixels - 2), 1, {}
    else:
        x_shape, w_shape, axis, kw = (5, 12), (pixels - 2, 12), 0, {"transB": 1}
    channels = w_shape[axis]
    sw = (RNG.random(channels) * 0.01 + 0.002).astype(np.float32)
    inits = [
        numpy_helper.from_array(SX, "sx"), numpy_helper.from_array(ZX, "zx"),
        numpy_helper.from_array(SY, "sy"), numpy_helper.from_array(ZY, "zy"),
        numpy_helper.from_array(RNG.integers(-127, 128, w_shape).astype(np.int8), "wq"),
        numpy_helper.from_array(sw, "sw"),
        numpy_helper.from_array(np.zeros(channels, np.int8), "zw"),
        numpy_helper.from_array(RNG.integers(-3000, 3000, channels).astype(np.int32), "bq"),
        numpy_helper.from_array(SX * sw, "sb"),
        numpy_helper.from_array(np.zeros(channels, np.int32), "zb"),
        numpy_helper.from_array(np.float32(-0.5), "lo"),  # a Clip (ReLU6-like): its bounds
        numpy_helper.from_array(np.float32(3.0), "hi"),   # become requantize min/max
    ]
    op = {"conv": "Conv", "matmul": "MatMul", "gemm": "Gemm"}[kind]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], axis=axis),
        helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bd"], axis=0),
        helper.make_node(op, ["xd", "wd"] + ([] if kind == "matmul" else ["bd"]), ["acc"], **kw),
        *([helper.make_node("Relu", ["acc"], ["r"])] if relu is True else
          [helper.make_node("Clip", ["acc", "lo", "hi"], ["r"])] if relu == "clip" else []),
        helper.make_node("QuantizeLinear", ["r" if relu else "acc", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model, {"x": (RNG.standard_normal(x_shape) * 2).astype(np.float32)}


@pytest.mark.parametrize("relu", [False, True, "clip"])
@pytest.mark.parametrize("kind", ["conv", "matmul", "gemm"])
def test_fold_qdq_matches_onnxruntime_exactly(kind: str, relu: bool | str) -> None:
    model, feeds = _qdq_model(kind, relu)
    graph = convert(model, {"x": feeds["x"].shape})
    folded = verify_graph(PASSES["fold_qdq"](graph, PassContext()))
    ops = [n.op for n in folded.nodes]
    assert "requantize" in ops and "relu" not in ops and "clip" not in ops
    # a conv this small sums below 2**24: float32 holds its integers exactly
    exact = "float32" if kind == "conv" else "int32"
    assert {folded.types[i].dtype for n in folded.nodes if n.op == kind for i in n.inputs} \
        == {exact}
    want = run_ort(model, feeds)[0]
    got = run_graph(folded, feeds)["y"]
    np.testing.assert_array_equal(got, want)


def test_fold_qdq_leaves_float_bias_it_cannot_recover() -> None:
    """A float bias that is no int32 multiple of sx * sw keeps the chain in float."""
    model, feeds = _qdq_model("gemm", False)
    bias = next(t for t in model.graph.node if t.output[0] == "bd")
    model.graph.node.remove(bias)
    model.graph.initializer.append(numpy_helper.from_array(
        np.full(7, 0.1234567, np.float32), "bd"))
    graph = convert(model, {"x": feeds["x"].shape})
    folded = PASSES["fold_qdq"](graph, PassContext())
    assert "requantize" not in [n.op for n in folded.nodes]


@pytest.mark.parametrize("kind", ["conv", "matmul", "gemm"])
def test_folded_chains_compile_to_the_same_integers(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through the -O3 pipeline (fusion, layouts) and the LLVM backend, for the host."""
    import deepc

    model, feeds = _qdq_model(kind, True)
    path = tmp_path / f"{kind}.onnx"
    onnx.save(model, str(path))
    compiled = deepc.compile(path, "host")
    assert "requantize" in [n.op for n in compiled.graph.nodes] or \
        any("requantize" in str(n.attrs) for n in compiled.graph.nodes)
    got = deepc.load(compiled.save(tmp_path / f"{kind}.tar")).run(feeds)["y"]
    np.testing.assert_array_equal(got, run_ort(model, feeds)[0])


def _fold_for_rpi5(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> Graph:
    """fold_qdq for rpi5 (it declares sdot; the graph is the same for vnni), checked."""
    from deepc.target import load_target

    graph = convert(model, {"x": feeds["x"].shape})
    return verify_graph(PASSES["fold_qdq"](graph, PassContext(target=load_target("rpi5"))))


# 20 channels fill no half vector: im2col words x weight words, lanes over the 81 pixels,
# each row of 9 widened to 16 so that 9 rows fill whole vectors
@pytest.mark.parametrize("relu", [False, True, "clip"])
def test_dot_product_conv_matches_onnxruntime_exactly(relu: bool | str,
                                                      tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On a target declaring a dot-product instruction the conv becomes im2col words x
    weight words with the zero point in the bias; compiled for the host, the same integers."""
    model, feeds = _qdq_model("conv", relu, 9, 20)
    folded = _fold_for_rpi5(model, feeds)
    ops = [n.op for n in folded.nodes]
    assert {"pack_windows", "dot4_matmul", "requantize", "slice"} <= set(ops)
    assert "conv" not in ops and "transpose" not in ops
    dot = next(n for n in folded.nodes if n.op == "dot4_matmul")
    assert folded.types[dot.outputs[0]].shape == (20, 9 * 16)
    _same_integers(model, feeds, folded, tmp_path)


# channels filling half vectors (32, 24 where strided): a direct conv of channels-last words
# (no im2col); strides, dilations, uneven padding, an RGB-like 3 input channels (a word's
# last byte unused) and a 7x7 stem window
@pytest.mark.parametrize("conv", [
    {}, {"strides": [2, 2]}, {"dilations": [2, 2], "pads": [2, 1, 2, 0]},
    {"channels": 3, "kernel_shape": [7, 7], "strides": [2, 2], "pads": [3, 3, 3, 3]}])
@pytest.mark.parametrize("relu", [False, "clip"])
def test_direct_dot_product_conv_matches_onnxruntime_exactly(
        relu: bool | str, conv: dict, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, feeds = _qdq_model("conv", relu, 11, 24 if "strides" in conv else 32, conv)
    folded = _fold_for_rpi5(model, feeds)
    ops = [n.op for n in folded.nodes]
    assert {"dot4_conv", "requantize"} <= set(ops) and not {"conv", "dot4_matmul"} & set(ops)
    # the padded words: 1x1 windows of the NCHW planes for one word a pixel, else the rows
    # of the channels-last bytes
    packs = [n for n in folded.nodes if n.op in ("pack_windows", "pack_rows")]
    assert [n.op for n in packs] == ["pack_windows" if "channels" in conv else "pack_rows"]
    assert all(n.attrs.get("kernel_shape", (1, 1)) == (1, 1) for n in packs)
    _same_integers(model, feeds, folded, tmp_path)


def test_direct_conv_of_int8_activations_pads_with_their_zero_point(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """int8 activations shift to unsigned bytes in their words: the padding holds the
    zero point shifted alike, so the border pixels equal onnxruntime's."""
    model, feeds = _qdq_model("conv", False, 11, 32)
    zx = next(t for t in model.graph.initializer if t.name == "zx")
    zx.CopyFrom(numpy_helper.from_array(np.int8(-23), "zx"))
    folded = _fold_for_rpi5(model, feeds)
    pad = next(n for n in folded.nodes if n.op == "pad")
    assert "dot4_conv" in [n.op for n in folded.nodes] and pad.attrs["value"] == -23
    _same_integers(model, feeds, folded, tmp_path)


def _same_integers(model: onnx.ModelProto, feeds: dict[str, np.ndarray], folded: Graph,
                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The folded graph's reference and the host bundle give the same bytes, and both are
    within one unit of onnxruntime's output (#24's bar: the integer sums are exact, and an
    onnxruntime session without VNNI may land a requantising tie one unit away — CI drew
    such inputs from the file's shared RNG, 1 of 3872 outputs)."""
    import deepc

    want = run_ort(model, feeds)[0]
    ours = run_graph(folded, feeds)["y"]
    (unit,) = output_units(model)
    assert unit is not None
    np.testing.assert_allclose(ours, want, rtol=0, atol=unit * 1.0001)
    path = tmp_path / "conv.onnx"
    onnx.save(model, str(path))
    compiled = deepc.compile(path, "host")
    np.testing.assert_array_equal(
        deepc.load(compiled.save(tmp_path / "conv.tar")).run(feeds)["y"], ours)


@pytest.mark.parametrize("columns", [16, 21])  # 21: a 5-lane tail widens and multiplies
@pytest.mark.parametrize("kind", ["matmul", "gemm"])
def test_dot_product_matmul_matches_onnxruntime_exactly(kind: str, columns: int,
                                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows of x as words times weight words, lanes over the output columns."""
    from deepc.target import load_target

    model, feeds = _qdq_model(kind, True, columns + 2)
    graph = convert(model, {"x": feeds["x"].shape})
    folded = verify_graph(PASSES["fold_qdq"](graph, PassContext(target=load_target("rpi5"))))
    assert {"pack_rows", "dot4_matmul"} <= {n.op for n in folded.nodes}
    # fewer rows than a tile: zero columns up to four registers of independent sums
    dot = next(n for n in folded.nodes if n.op == "dot4_matmul")
    assert folded.types[dot.outputs[0]].shape[1] == 64
    _same_integers(model, feeds, folded, tmp_path)


@pytest.mark.parametrize(("target", "instruction"), [
    ("host", r"vpdpbusd\s+%zmm"), ("rpi5", r"sdot\s+v\d+\.4s"),
    ("rpi4", r"(mla|mul)\s+v\d+\.4s"), ("x86_64", r"vpmaddwd\s+%ymm")])
def test_dot_product_instruction_in_the_hot_loop(target: str, instruction: str,
                                                 tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`inspect-ir --stage asm`: the GEMM kernel uses the target's dot-product instruction
    (rpi4 has none: it widens and multiplies)."""
    from deepc.compiler.inspect import kernel_texts
    from deepc.target import load_target

    loaded = load_target(target)
    if target == "host" and "avx512_vnni" not in loaded.dot_intrinsics:
        pytest.skip("this CPU has no AVX-512 VNNI")
    model, feeds = _qdq_model("conv", True, 8)
    graph = convert(model, {"x": feeds["x"].shape})
    texts = kernel_texts(graph, loaded, "asm", opt_level=3)
    gemm = [asm for name, asm in texts.items() if "dot4_matmul" in name or "conv" in name]
    assert gemm and all(re.search(instruction, asm) for asm in gemm), texts.keys()
    assert target != "rpi4" or not any("sdot" in asm for asm in gemm)


@pytest.mark.parametrize("fits", [True, False])
@pytest.mark.parametrize("kind", ["conv", "matmul"])
def test_avx2_sums_pairs_saturating_only_where_the_weights_fit(kind: str, fits: bool,
                                                               tmp_path) -> None:  # type: ignore[no-untyped-def]
    """AVX2 (x86_64): vpmaddubsw's int16 pair sums where every adjacent weight pair has
    |w0| + |w1| <= 128, exact vpmaddwd otherwise; both give onnxruntime's integers, also
    where 255 * (127 + 127) would saturate an int16."""
    import deepc
    from deepc.target import load_target

    model, feeds = _qdq_model(kind, True, 18)
    w = next(t for t in model.graph.initializer if t.name == "wq")
    values = numpy_helper.to_array(w).copy()
    values = values // 2 if fits else np.where(values >= 0, 127, -127).astype(np.int8)
    w.CopyFrom(numpy_helper.from_array(values.astype(np.int8), "wq"))
    feeds["x"][:] = np.abs(feeds["x"]) + 4.0  # activations near 255
    graph = convert(model, {"x": feeds["x"].shape})
    folded = verify_graph(PASSES["fold_qdq"](graph, PassContext(target=load_target("x86_64"))))
    # exact vpmaddwd: on weights widened ahead of time where the GEMM broadcasts them (pixels
    # in the lanes), widened per use where they are the vector operand
    dots = {(str(n.attrs["dot"]), int(n.attrs.get("unsigned", 0)))
            for n in folded.nodes if n.op.startswith("dot4_")}
    assert dots and all(d == ("maddubs" if fits else "wd" if swap else "maddwd")
                        for d, swap in dots), dots
    want = run_ort(model, feeds)[0]
    # the integer sums are exact; the requantising epilogue may land a tie one unit away
    # (#24's bar), where a saturated pair sum would be many units off
    (unit,) = output_units(model)
    assert unit is not None
    np.testing.assert_allclose(run_graph(folded, feeds)["y"], want, rtol=0, atol=unit * 1.0001)
    if "avx2_madd" not in load_target("host").dot_intrinsics:
        pytest.skip("this CPU has no AVX2 to run the x86_64 bundle")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    compiled = deepc.compile(path, "x86_64")
    got = deepc.load(compiled.save(tmp_path / "m.tar")).run(feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=0, atol=unit * 1.0001)


@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_activation_between_qdq_pairs_of_one_scale_clamps_integers(act: str) -> None:
    """Q(act(DQ(x))) at x's own scale and zero point: a clip of the uint8 values."""
    inits = [numpy_helper.from_array(SX, "s"), numpy_helper.from_array(ZX, "z"),
             numpy_helper.from_array(np.float32(0.0), "lo"),
             numpy_helper.from_array(np.float32(2.5), "hi")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node(act, ["xd", "lo", "hi"] if act == "Clip" else ["xd"], ["a"]),
             helper.make_node("QuantizeLinear", ["a", "s", "z"], ["aq"]),
             helper.make_node("DequantizeLinear", ["aq", "s", "z"], ["y"])]
    graph = helper.make_graph(
        nodes, "act", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (4, 50))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": (RNG.standard_normal((4, 50)) * 3).astype(np.float32)}
    folded = PASSES["fold_qdq"](convert(model, {"x": (4, 50)}), PassContext())
    clips = [n for n in folded.nodes if n.op == "clip"]
    assert len(clips) == 1 and folded.types[clips[0].inputs[0]].dtype == "uint8"
    np.testing.assert_array_equal(run_graph(folded, feeds)["y"], run_ort(model, feeds)[0])


@pytest.mark.toolchain
@pytest.mark.parametrize("kind", ["conv", "matmul"])
def test_sdot_kernels_run_exactly_under_emulation(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The rpi5 bundle (sdot, with the unsigned-byte correction) under qemu's Cortex-A76."""
    import deepc
    from tests.e2e.test_cross import cross_target

    target = cross_target("rpi5")
    model, feeds = _qdq_model(kind, True, 8 if kind == "conv" else 18)
    path = tmp_path / f"{kind}.onnx"
    onnx.save(model, str(path))
    bundle = deepc.load(deepc.compile(path, target).save(tmp_path / f"{kind}.tar"))
    assert bundle.emulated
    np.testing.assert_array_equal(bundle.run(feeds)["y"], run_ort(model, feeds)[0])

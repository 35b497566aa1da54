"""int8 depthwise convs channels-last (qdq_depthwise): an inverted-residual block of QDQ
convs (1x1 or RGB 3x3 expand, ReLU6/SiLU, 3x3 depthwise, 1x1 project, residual add) folds
into a channels-last int32 conv_nchwc between pixel-major dot-product GEMMs, no transposes
left between them, and compiles to onnxruntime's integers."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext, run_pipeline
from deepc.passes.qdq_dot import dot_kind
from deepc.passes.verify import verify_graph
from deepc.target import load_target
from tests.helpers import run_ort

RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _own_draws(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test draws its weights and inputs from a generator seeded by its own id, not by
    the tests a parallel worker ran before it: about 1 draw in 170 of the squeeze-and-excite
    block puts a pooled value on a rounding tie that onnxruntime's fused integer average
    pool settles one unit away from the float QDQ semantics (deepc's reference, folded or
    not), and the excitation spreads that unit over every channel (CI met one)."""
    monkeypatch.setattr(sys.modules[__name__], "RNG",
                        np.random.default_rng(zlib.crc32(request.node.nodeid.encode())))


def _q(name: str, scale: float, zero: int, inits: list, nodes: list) -> str:  # type: ignore[type-arg]
    """QuantizeLinear -> DequantizeLinear of `name` at (scale, zero): the value's name."""
    inits += [numpy_helper.from_array(np.float32(scale), f"{name}_s"),
              numpy_helper.from_array(np.uint8(zero), f"{name}_z")]
    nodes += [helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
              helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                               [f"{name}_d"])]
    return f"{name}_d"


def _conv(x: str, sx: float, out: str, w_shape: tuple[int, ...], inits: list,  # type: ignore[type-arg]
          nodes: list, **attrs: object) -> str:  # type: ignore[type-arg]
    """A QDQ conv of x (quantized at sx) with per-channel int8 weights and an int32 bias."""
    channels = w_shape[0]
    sw = (RNG.random(channels) * 0.01 + 0.004).astype(np.float32)
    inits += [numpy_helper.from_array(RNG.integers(-127, 128, w_shape).astype(np.int8),
                                      f"{out}_wq"),
              numpy_helper.from_array(sw, f"{out}_sw"),
              numpy_helper.from_array(np.zeros(channels, np.int8), f"{out}_zw"),
              numpy_helper.from_array(RNG.integers(-2000, 2000, channels).astype(np.int32),
                                      f"{out}_bq"),
              numpy_helper.from_array(np.float32(sx) * sw, f"{out}_sb"),
              numpy_helper.from_array(np.zeros(channels, np.int32), f"{out}_zb")]
    nodes += [helper.make_node("DequantizeLinear", [f"{out}_wq", f"{out}_sw", f"{out}_zw"],
                               [f"{out}_wd"], axis=0),
              helper.make_node("DequantizeLinear", [f"{out}_bq", f"{out}_sb", f"{out}_zb"],
                               [f"{out}_bd"], axis=0),
              helper.make_node("Conv", [x, f"{out}_wd", f"{out}_bd"], [out], **attrs)]
    return out


def _block(size: int, channels: int, stride: int, act: str, first: bool = False,
           residual: bool = False, excite: bool = False) -> onnx.ModelProto:
    """x[1, 16, size, size] -> 1x1 (channels) -> act -> 3x3 depthwise -> act -> 1x1 (16)
    [-> + x, x through a 1x1 stem first]; `first`: x[1, 3, ...] and a 3x3 first conv (an
    RGB stem: float-exact); `excite`: a squeeze-and-excitation block after the depthwise
    conv (EfficientNet's: pool, 1x1, SiLU, 1x1, sigmoid, scale)."""
    inits: list = []  # type: ignore[type-arg]
    nodes: list = []  # type: ignore[type-arg]
    inits += [numpy_helper.from_array(np.float32(0.0), "lo"),
              numpy_helper.from_array(np.float32(6.0), "hi")]

    def activation(y: str) -> str:
        if act == "relu6":
            nodes.append(helper.make_node("Clip", [y, "lo", "hi"], [f"{y}_a"]))
        else:
            nodes.extend([helper.make_node("Sigmoid", [y], [f"{y}_sig"]),
                          helper.make_node("Mul", [y, f"{y}_sig"], [f"{y}_a"])])
        return f"{y}_a"

    x_channels = 3 if first else 16
    x, sx = _q("x", 0.03, 120, inits, nodes), 0.03
    if residual:  # a 1x1 stem, whose result the block's end adds
        x, sx = _q(_conv(x, sx, "s", (16, 16, 1, 1), inits, nodes), 0.04, 110, inits, nodes), 0.04
    e = _conv(x, sx, "e", (channels, x_channels, 3, 3) if first else (channels, 16, 1, 1),
              inits, nodes, **({"pads": [1, 1, 1, 1]} if first else {}))
    e = _q(activation(_q(e, 0.05, 100, inits, nodes)), 0.025, 0, inits, nodes)
    d = _q(_conv(e, 0.025, "d", (channels, 1, 3, 3), inits, nodes, group=channels,
                 pads=[1, 1, 1, 1], strides=[stride, stride]), 0.06, 90, inits, nodes)
    d = _q(activation(d), 0.03, 0, inits, nodes)
    if excite:
        nodes.append(helper.make_node("GlobalAveragePool", [d], ["pool"]))
        pool = _q("pool", 0.02, 10, inits, nodes)
        r = _q(_conv(pool, 0.02, "r", (4, channels, 1, 1), inits, nodes), 0.05, 100, inits, nodes)
        r = _q(activation(r), 0.03, 20, inits, nodes)
        g = _q(_conv(r, 0.03, "g", (channels, 4, 1, 1), inits, nodes), 0.05, 100, inits, nodes)
        nodes.append(helper.make_node("Sigmoid", [g], ["gate"]))
        nodes.append(helper.make_node("Mul", [d, "gate"], ["scaled"]))
        d = _q("scaled", 0.03, 0, inits, nodes)
    out = _q(_conv(d, 0.03, "p", (16, channels, 1, 1), inits, nodes), 0.04, 128, inits, nodes)
    if residual:
        nodes.append(helper.make_node("Add", [out, x], ["sum"]))
        out = _q("sum", 0.05, 125, inits, nodes)
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                       (1, x_channels, size, size))],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


# 7x7: pixel-major GEMMs anyway; 12x12 stride 2 and 16x16: made pixel-major for the
# depthwise conv; an RGB first conv (float-exact) and a residual add of two GEMM results
# (the add runs on their channels-last rows) and a squeeze-and-excitation block (its pool
# and scale on channels-last bytes) also channels-last
@pytest.mark.parametrize(("size", "channels", "stride", "act", "first", "residual", "excite"), [
    (7, 32, 1, "relu6", False, False, False), (12, 48, 2, "relu6", False, False, False),
    (9, 32, 1, "silu", False, False, False), (16, 32, 1, "relu6", True, False, False),
    (7, 32, 1, "relu6", False, True, False), (16, 32, 1, "silu", False, False, True)])
def test_depthwise_block_runs_channels_last(size: int, channels: int, stride: int, act: str,
                                            first: bool, residual: bool, excite: bool,
                                            tmp_path: Path) -> None:
    import deepc

    model = _block(size, channels, stride, act, first, residual, excite)
    out = model.graph.output[0].name
    shape = (1, 3 if first else 16, size, size)
    feeds = {"x": (RNG.standard_normal(shape) * 2).astype(np.float32)}
    want = run_ort(model, feeds)[0]
    graph = convert(model, {"x": shape})
    # the graph is the same for any dot-product target (rpi5: sdot; a VNNI host); the
    # bundle is compiled for this host, whatever it has, and must give the same integers
    target = load_target("rpi5")
    folded = verify_graph(PASSES["fold_qdq"](graph, PassContext(target=target)))
    dw = [n for n in folded.nodes if n.op == "conv_nchwc"]
    assert len(dw) == 1 and folded.types[dw[0].inputs[0]].dtype == "int32"
    assert all(folded.types[d.outputs[0]].shape[1] == 1 for d in dw)  # channels-last
    assert "conv" not in [n.op for n in folded.nodes]
    np.testing.assert_array_equal(run_graph(folded, feeds)[out], want)
    # after qdq_glue no transpose is left between the convs (and the add), only the
    # result's back to NCHW
    optimized = run_pipeline(graph, 3, PassContext(target=target))
    moves = [n for n in optimized.nodes if n.op == "transpose"
             and optimized.types[n.outputs[0]].size > channels]  # not the SE's [1, C, 1, 1]
    assert len(moves) == 1, [n.op for n in optimized.nodes]
    path = tmp_path / "block.onnx"
    onnx.save(model, str(path))
    compiled = deepc.compile(path, "host", opt_level=3)
    got = deepc.load(compiled.save(tmp_path / "block.tar")).run(feeds)[out]
    np.testing.assert_array_equal(got, want)
    # uint8 rows whose channels fill whole words are packed by no kernel: the same bytes
    if dot_kind(compiled.target) is not None:
        packs = [k for k in compiled.plan.calls if "pack_rows" in k.ops]
        assert not packs and compiled.plan.aliases


@pytest.mark.parametrize(("channels", "board"), [(32, None), (24, "host")])
def test_depthwise_stays_nchw(channels: int, board: str | None) -> None:
    """A target that is no CPU (no conv_nchwc schedule for int32 there), or channels that
    fill no whole vectors, keep the int32 NCHW conv."""
    model = _block(7, channels, 1, "relu6")
    feeds = {"x": (RNG.standard_normal((1, 16, 7, 7)) * 2).astype(np.float32)}
    graph = convert(model, {"x": (1, 16, 7, 7)})
    folded = PASSES["fold_qdq"](graph, PassContext(target=board and load_target(board)))
    assert "conv_nchwc" not in [n.op for n in folded.nodes]
    out = model.graph.output[0].name
    np.testing.assert_array_equal(run_graph(folded, feeds)[out], run_ort(model, feeds)[0])


@pytest.mark.parametrize(("kernel", "board"), [(3, "rpi5"), (7, "rpi5"), (3, "rpi4")])
def test_rgb_first_conv_is_dot_words_where_the_target_has_them(kernel: int,
                                                               board: str) -> None:
    """3 input channels mix taps in a word, and dot products still beat the float kernels
    (rpi5 declares sdot); without them (rpi4) the conv runs in float, exactly, channels-last
    where a depthwise conv reads it."""
    inits: list = []  # type: ignore[type-arg]
    nodes: list = []  # type: ignore[type-arg]
    x = _q("x", 0.03, 120, inits, nodes)
    _q(_conv(x, 0.03, "c", (16, 3, kernel, kernel), inits, nodes, strides=[2, 2],
             pads=[kernel // 2] * 4), 0.05, 100, inits, nodes)
    graph = helper.make_graph(
        nodes, "stem", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                      (1, 3, 20, 20))],
        [helper.make_tensor_value_info("c_d", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": (RNG.standard_normal((1, 3, 20, 20)) * 2).astype(np.float32)}
    folded = PASSES["fold_qdq"](convert(model, {"x": (1, 3, 20, 20)}),
                                PassContext(target=load_target(board)))
    ops = [n.op for n in folded.nodes]
    assert ("dot4_conv" in ops) == (board == "rpi5") and ("conv" in ops) == (board == "rpi4")
    np.testing.assert_array_equal(run_graph(folded, feeds)["c_d"], run_ort(model, feeds)[0])


def test_rgb_first_conv_without_dot_products_feeds_depthwise_channels_last() -> None:
    model = _block(16, 32, 1, "relu6", first=True)
    feeds = {"x": (RNG.standard_normal((1, 3, 16, 16)) * 2).astype(np.float32)}
    folded = PASSES["fold_qdq"](convert(model, {"x": (1, 3, 16, 16)}),
                                PassContext(target=load_target("rpi4")))
    convs = [n for n in folded.nodes if n.op == "conv_nchwc"]
    assert [folded.types[n.outputs[0]].dtype for n in convs] == ["float32", "int32"]
    assert all(folded.types[n.outputs[0]].shape[1] == 1 for n in convs)
    out = model.graph.output[0].name
    np.testing.assert_array_equal(run_graph(folded, feeds)[out], run_ort(model, feeds)[0])

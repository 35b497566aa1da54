"""int8 convs as direct convs of channels-last words (qdq_dot's dot4_conv): a ResNet basic
block behind a 7x7/2 RGB stem and a 3x3/2 max pool stays channels-last from the stem to the
end (the pool pools channels-last, the residual add joins the second conv's channels-last
result, the global pool averages it), no transposes left, and compiles to onnxruntime's integers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph
from deepc.passes import PassContext, run_pipeline
from deepc.target import load_target
from tests.helpers import run_ort
from tests.passes.test_qdq_depthwise import _conv, _q

RNG = np.random.default_rng(3)


def _resnet_block(channels: int) -> onnx.ModelProto:
    inits: list = []  # type: ignore[type-arg]
    nodes: list = []  # type: ignore[type-arg]

    def relu(y: str) -> str:
        nodes.append(helper.make_node("Relu", [y], [f"{y}_r"]))
        return f"{y}_r"

    x = _q("x", 0.03, 120, inits, nodes)
    stem = _q(relu(_conv(x, 0.03, "stem", (channels, 3, 7, 7), inits, nodes, strides=[2, 2],
                         pads=[3, 3, 3, 3])), 0.05, 0, inits, nodes)
    nodes.append(helper.make_node("MaxPool", [stem], ["pool"], kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    pool = _q("pool", 0.05, 0, inits, nodes)
    a = _q(relu(_conv(pool, 0.05, "a", (channels, channels, 3, 3), inits, nodes,
                      pads=[1, 1, 1, 1])), 0.04, 0, inits, nodes)
    b = _q(_conv(a, 0.04, "b", (channels, channels, 3, 3), inits, nodes, pads=[1, 1, 1, 1]),
           0.06, 128, inits, nodes)
    nodes.append(helper.make_node("Add", [b, pool], ["sum"]))
    nodes.append(helper.make_node("GlobalAveragePool", [relu(_q("sum", 0.07, 125, inits, nodes))],
                                  ["y"]))
    y = "y"
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                       (1, 3, 32, 32))],
        [helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_resnet_block_runs_channels_last(tmp_path: Path) -> None:
    import deepc

    model = _resnet_block(32)
    out = model.graph.output[0].name
    feeds = {"x": (RNG.standard_normal((1, 3, 32, 32)) * 2).astype(np.float32)}
    want = run_ort(model, feeds)[0]
    # the graph is the same for any dot-product target (rpi5: sdot; a VNNI host)
    optimized = run_pipeline(convert(model, {"x": (1, 3, 32, 32)}), 3,
                             PassContext(target=load_target("rpi5")))
    ops = [n.op for n in optimized.nodes]
    assert ops.count("dot4_conv") == 3 and "pack_windows" in ops  # the stem's 1x1 windows
    pools = [n for n in optimized.nodes if n.op == "max_pool"]
    assert [p.attrs.get("layout") for p in pools] == ["NCHWc"]
    assert optimized.types[pools[0].inputs[0]].shape == (1, 1, 16, 16, 32)  # channels-last
    # no transpose left: the pool averages the channels-last sum
    assert "transpose" not in ops, ops
    # the bytes equal onnxruntime's; the float mean of 64 of them may round apart (one byte
    # off would move it by 0.07 / 64, a hundred times the tolerance)
    np.testing.assert_allclose(run_graph(optimized, feeds)[out], want, rtol=1e-5)
    path = tmp_path / "block.onnx"
    onnx.save(model, str(path))
    compiled = deepc.compile(path, "host")
    np.testing.assert_allclose(
        deepc.load(compiled.save(tmp_path / "block.tar")).run(feeds)[out], want, rtol=1e-5)

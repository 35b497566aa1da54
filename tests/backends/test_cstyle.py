"""The C-style renderer: text of small functions, and numbers of GPU-scheduled kernels run on
the CPU through its C dialect (tests/backends/cuda/simulate.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepc.backends.cstyle import Renderer, RenderError
from deepc.backends.cstyle_module import render_module
from deepc.backends.cuda.dialect import CUDA
from deepc.ir.expr import Call, Const, Select, Var, binary
from deepc.ir.loop import Allocate, Buffer, Evaluate, For, ForKind, PrimFunc, Store, seq
from deepc.schedule import Schedule


def _relu_func() -> PrimFunc:
    a, b = Buffer("A", (4, 8), "float32"), Buffer("B", (4, 8), "float32")
    i, j = Var("i"), Var("j")
    body = For(i, 4, ForKind.SERIAL, For(j, 8, ForKind.SERIAL,
               Store(b, (i, j), binary("max", a[i, j], Const(0.0, "float32")))))
    return PrimFunc("relu", (a, b), body)


def test_cuda_kernel_text() -> None:
    f = Schedule().add("fuse", "i", "j").add("split", "i_j", 16) \
        .add("bind", "i_j_o", "blockIdx.x").add("bind", "i_j_i", "threadIdx.x").apply(_relu_func())
    text = Renderer(CUDA, "int").function(f)
    assert text.startswith('extern "C" __global__ void relu(const float* __restrict__ A,'
                           ' float* __restrict__ B)')
    assert "const int i_j_o = blockIdx.x;" in text and "const int i_j_i = threadIdx.x;" in text
    assert "deepc_maxf(" in text and "for (" not in text


def test_expressions() -> None:
    r = Renderer(CUDA, "int")
    x, y = Var("x"), Var("y")
    assert r.expr(binary("floordiv", x, Const(4, "int64"))) == "(x / 4)"  # both non-negative
    neg = binary("sub", x, Const(3, "int64"))
    assert "deepc_floordiv" in r.expr(binary("floordiv", neg, Const(4, "int64")))
    assert r.expr(Const(float("-inf"), "float32")) == "(-INFINITY)"
    assert r.expr(Const(0.5, "float32")) == "0.5f"
    assert r.expr(Call("exp", (Const(1.0, "float64"),), "float64")) == "exp(1.0)"
    assert r.expr(Call("rsqrt", (Const(2.0, "float32"),), "float32")) == "rsqrtf(2.0f)"
    sel = Select(binary("lt", x, y), Const(1.0, "float32"), Const(2.0, "float32"))
    assert r.expr(sel) == "((x < y) ? 1.0f : 2.0f)"


def test_shared_memory_and_barrier() -> None:
    s, out = Buffer("S", (32,), "float32", "shared"), Buffer("O", (32,), "float32")
    t = Var("t")
    body = For(t, 32, ForKind.GPU_THREAD, Allocate(s, seq(
        Store(s, (t,), Const(1.0, "float32")), Evaluate("barrier"),
        Store(out, (t,), s[31 - t]))), "x")
    text = render_module([PrimFunc("k", (out,), body)], CUDA)
    assert "__shared__ float S[32];" in text and "__syncthreads();" in text


def test_unknown_intrinsic_is_an_error() -> None:
    from deepc.backends.cuda.dialect import C

    with pytest.raises(RenderError, match="barrier"):
        Renderer(C).stmt(Evaluate("barrier"), 0)


@pytest.mark.parametrize("case", ["conv_relu_pool", "softmax_matmul"])
def test_gpu_schedules_match_numpy(case: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every node of a small graph, GPU-scheduled (grid, register tiles, scratch stages),
    rendered, run on the CPU, against the numpy references."""
    from onnx import helper

    from deepc.frontends.onnx import convert
    from deepc.ops.interpreter import run_graph
    from deepc.target import load_target
    from tests.backends.cuda.simulate import simulate

    rng = np.random.default_rng(0)
    if case == "conv_relu_pool":
        w = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["r"]),
                 helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
        x_shape, inits = (2, 3, 16, 16), {"w": w}
    else:
        w = rng.standard_normal((24, 40)).astype(np.float32)
        nodes = [helper.make_node("Softmax", ["x"], ["s"], axis=-1),
                 helper.make_node("MatMul", ["s", "w"], ["y"])]
        x_shape, inits = (3, 5, 24), {"w": w}
    graph_proto = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, list(x_shape))],
        [helper.make_tensor_value_info("y", 1, None)],
        initializer=[helper.make_tensor(k, 1, v.shape, v.ravel()) for k, v in inits.items()])
    graph = convert(helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)]))
    x = rng.standard_normal(x_shape).astype(np.float32)
    target = load_target("cuda-sm90")
    # a one-SM GPU makes the register-tile threshold reachable on test-sized shapes
    target = replace(target, gpu=replace(target.gpu, sm_count=1))
    got, records = simulate(graph, target, {"x": x}, tmp_path)
    want = run_graph(graph, {"x": x})["y"]
    np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-5)
    steps = str(records)
    assert "blockIdx.x" in steps
    if case == "conv_relu_pool":
        assert "tile_reduction" in steps  # the conv computes 8 channels per thread


def _relu_model():  # type: ignore[no-untyped-def]
    """A one-node graph (Relu on 2x8) for bundle tests."""
    from onnx import helper

    from deepc.frontends.onnx import convert

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                          [helper.make_tensor_value_info("x", 1, [2, 8])],
                          [helper.make_tensor_value_info("y", 1, [2, 8])])
    return convert(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

"""Simplification of per-channel affine maps: batch norm and mul/add/sub by per-channel
constants folded into conv, gemm and matmul weights and bias; batch norm elsewhere becomes
mul + add."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.frontends import load
from tests.conftest import ROOT
from tests.passes.support import RNG, Net, check_pass, ops, weights


def batch_norm(n: Net, x: str, channels: int, shape: tuple[int, ...] | None = None,
               out: str | None = None) -> str:
    shape = shape or (channels,)
    scale, bias, mean = weights(*shape), weights(*shape), weights(*shape)
    var = (RNG.random(shape) + 0.5).astype(np.float32)
    return n("batch_norm", x, *(n.const(p) for p in (scale, bias, mean, var)), epsilon=1e-3,
             out=out)


@pytest.mark.parametrize(("group", "bias", "layout"), [(1, True, "OIHW"), (1, False, "OIHW"),
                                                       (2, True, "OIHW"), (1, True, "IHWO")])
def test_batch_norm_folds_into_the_conv_before_it(group: int, bias: bool, layout: str) -> None:
    n = Net(x=(1, 4, 9, 9))
    w = weights(6, 4 // group, 3, 3)
    if layout == "IHWO":
        w = np.ascontiguousarray(np.moveaxis(w, 0, -1))
    inputs = ["x", n.const(w)] + ([n.const(weights(6))] if bias else [])
    c = n("conv", *inputs, strides=(2, 2), pads=(1, 1, 1, 1), group=group,
          kernel_layout=layout)
    after = check_pass(n.graph(batch_norm(n, c, 6, out="y")), "simplify")
    assert ops(after) == ["conv"] and after.nodes[0].outputs == ("y",)
    assert len(after.nodes[0].inputs) == 3 and after.nodes[0].attr("kernel_layout") == layout


def test_batch_norm_stays_off_a_conv_read_elsewhere_or_with_computed_weights() -> None:
    n = Net(x=(1, 3, 6, 6), w=(5, 3, 1, 1))
    shared = n("conv", "x", n.const(weights(5, 3, 1, 1)))
    computed = n("conv", "x", "w")
    graph = n.graph(batch_norm(n, shared, 5), shared, batch_norm(n, computed, 5))
    after = check_pass(graph, "simplify")
    assert ops(after).count("conv") == 2 and "batch_norm" not in ops(after)
    assert ops(after).count("mul") == 2 and ops(after).count("add") == 2


def test_batch_norm_elsewhere_becomes_mul_and_add() -> None:
    n = Net(x=(2, 3, 4, 5))
    per_channel = batch_norm(n, n("relu", "x"), 3)
    per_activation = batch_norm(n, "x", 3, shape=(3, 4, 5))
    flat = batch_norm(n, n("reshape", "x", shape=(2, 60)), 60)
    after = check_pass(n.graph(per_channel, per_activation, flat), "simplify")
    assert "batch_norm" not in ops(after)
    assert ops(after).count("mul") == 3 and ops(after).count("add") == 3


@pytest.mark.parametrize(("trans_b", "c_shape", "alpha", "beta"), [
    (0, None, 1.0, 1.0), (1, (7,), 1.0, 1.0), (0, (1, 7), 0.5, 2.0), (1, (4, 7), 2.0, 0.5)])
def test_batch_norm_folds_into_gemm(trans_b: int, c_shape: tuple[int, ...] | None,
                                    alpha: float, beta: float) -> None:
    n = Net(a=(4, 5))
    b = n.const(weights(7, 5) if trans_b else weights(5, 7))
    inputs = ["a", b] + ([n.const(weights(*c_shape))] if c_shape else [])
    g = n("gemm", *inputs, trans_b=trans_b, alpha=alpha, beta=beta)
    after = check_pass(n.graph(batch_norm(n, g, 7)), "simplify")
    assert ops(after) == ["gemm"] and len(after.nodes[0].inputs) == 3


def test_batch_norm_folds_into_a_matmul_by_constant_weights() -> None:
    n = Net(a=(4, 5), b=(2, 4, 5))
    flat = n("matmul", "a", n.const(weights(5, 6)))
    batched = n("matmul", "b", n.const(weights(5, 6)))  # axis 1 is not the matmul's column
    after = check_pass(n.graph(batch_norm(n, flat, 6), batch_norm(n, batched, 4)), "simplify")
    assert sorted(ops(after)) == ["add", "gemm", "matmul", "mul"]


@pytest.mark.parametrize(("op", "shape", "first"), [
    ("mul", (5, 1, 1), False), ("mul", (1, 5, 1, 1), True), ("mul", (), False),
    ("add", (5, 1, 1), True), ("add", (1,), False), ("sub", (5, 1, 1), False)])
def test_per_channel_constants_fold_into_the_conv(op: str, shape: tuple[int, ...],
                                                 first: bool) -> None:
    n = Net(x=(1, 3, 6, 6))
    c = n("conv", "x", n.const(weights(5, 3, 3, 3)), n.const(weights(5)))
    k = n.const(weights(*shape))
    y = n(op, *((k, c) if first else (c, k)))
    after = check_pass(n.graph(n("relu", y)), "simplify")
    assert ops(after) == ["conv", "relu"]


def test_constants_that_vary_off_the_channel_axis_stay() -> None:
    n = Net(x=(1, 3, 6, 6), a=(4, 5))
    c = n("conv", "x", n.const(weights(5, 3, 3, 3)))
    spatial = n("add", c, n.const(weights(1, 1, 4, 4)))
    g = n("gemm", "a", n.const(weights(5, 6)))
    rows = n("mul", g, n.const(weights(4, 1)))
    after = check_pass(n.graph(spatial, rows), "simplify")
    assert ops(after) == ["conv", "add", "gemm", "mul"]


def test_bias_adds_fold_into_gemm_and_turn_a_matmul_into_gemm() -> None:
    n = Net(a=(4, 5), w=(5, 6))
    g = n("add", n("gemm", "a", n.const(weights(6, 5)), n.const(weights(6)), trans_b=1),
          n.const(weights(6)))
    m = n("add", n.const(weights(1, 6)), n("matmul", "a", "w"))
    s = n("mul", n("matmul", "a", "w"), n.const(weights(6)))  # scaling needs constant weights
    after = check_pass(n.graph(g, m, s), "simplify")
    assert ops(after) == ["gemm", "gemm", "matmul", "mul"]


def test_the_example_model_loses_its_batch_norms() -> None:
    graph = load(ROOT / "examples" / "tiny_cnn.onnx")
    assert "batch_norm" in ops(graph)
    after = check_pass(graph, "simplify", rtol=1e-4)
    assert "batch_norm" not in ops(after)
    assert ops(after).count("conv") == ops(graph).count("conv")

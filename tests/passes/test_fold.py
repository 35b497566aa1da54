"""Constant folding: what becomes a constant, what stays a node, and the numbers after."""

from __future__ import annotations

import numpy as np

from deepc.passes import PassContext
from tests.passes.support import Net, check_pass, ops, weights


def test_weight_transforms_and_shape_arithmetic_fold() -> None:
    # a weight transposed and scaled, and int64 shape arithmetic cast to float: all constant
    n = Net(x=(4, 96))
    w = n("transpose", n.const(weights(80, 96)), perm=(1, 0))
    w = n("mul", w, n.const(np.float32(0.5)))
    dims = n("concat", n.const([2, 3], dtype=np.int64), n.const([4], dtype=np.int64), axis=0)
    scale = n("cast", n("reduce_sum", dims, axes=(0,), keepdims=0), to="float32")
    y = n("mul", n("matmul", "x", w), scale)
    after = check_pass(n.graph(y), "fold")
    assert ops(after) == ["matmul", "mul"]
    assert float(after.constants[after.nodes[1].inputs[1]]) == 9.0


def test_multi_output_ops_and_dtypes_fold() -> None:
    n = Net(x=(2, 3))
    parts = n.multi("split", n.const(weights(2, 6)), n=2, axis=1, sizes=(3, 3))
    half = n("add", n.const(np.ones((2, 3), np.float16)), n.const(np.ones((2, 3), np.float16)))
    y = n("add", n("add", "x", parts[1]), n("cast", half, to="float32"))
    after = check_pass(n.graph(y), "fold")
    assert ops(after) == ["add", "add"]
    assert {str(after.types[i]) for node in after.nodes for i in node.inputs
            if i in after.constants} == {"float32[2x3]"}


def test_broadcast_of_a_scalar_to_a_big_shape_stays_a_node() -> None:
    n = Net(x=(1024, 1024))
    big = n("broadcast_to", n.const(np.float32(2.0)), shape=(1024, 1024))  # 4 MiB
    small = n("broadcast_to", n.const(np.float32(3.0)), shape=(1024,))
    y = n("add", n("mul", "x", big), small)
    after = check_pass(n.graph(y), "fold", seeds=(0,))
    assert ops(after) == ["broadcast_to", "mul", "add"]
    assert after.param_bytes < 8192


def test_results_over_the_size_cap_stay_nodes() -> None:
    n = Net(x=(64, 64))
    y = n("add", "x", n("exp", n.const(weights(64, 64))))
    graph = n.graph(y)
    assert ops(check_pass(graph, "fold", PassContext(fold_max_bytes=1024))) == ["exp", "add"]
    assert ops(check_pass(graph, "fold")) == ["add"]


def test_graph_outputs_stay_node_outputs_and_identities_reuse_their_input() -> None:
    n = Net(x=(8,))
    w = n.const(weights(8))
    same = n("identity", w)
    y = n("relu", n.const(weights(8)), out="y")  # a constant graph output
    z = n("add", "x", n("reshape", same, shape=(8,)))
    graph = n.graph(y, z)
    after = check_pass(graph, "fold")
    assert ops(after) == ["relu", "add"]
    assert after.nodes[1].inputs[1] == w and after.param_bytes == graph.param_bytes


def test_nothing_to_fold_returns_the_graph() -> None:
    n = Net(x=(3,))
    graph = n.graph(n("relu", "x"))
    assert check_pass(graph, "fold") is graph

"""Common-subexpression elimination: equal nodes and equal constants become one."""

from __future__ import annotations

import numpy as np

from tests.passes.support import Net, check_pass, ops, weights


def test_equal_nodes_merge_and_different_attrs_do_not() -> None:
    n = Net(x=(2, 3))
    a, b = n("relu", "x"), n("relu", "x")
    s1, s2 = n("softmax", "x", axis=1), n("softmax", "x", axis=0)
    y = n("add", n("add", a, b), n("add", s1, s2))
    after = check_pass(n.graph(y), "cse")
    assert ops(after) == ["relu", "softmax", "softmax", "add", "add", "add"]
    assert after.nodes[3].inputs == (after.nodes[0].outputs[0],) * 2


def test_constants_with_equal_bytes_merge_then_their_users() -> None:
    w = weights(3)
    n = Net(x=(3,))
    c1, c2 = n.const(w), n.const(w.copy())
    zero, minus_zero = n.const(np.zeros(3, np.float32)), n.const(-np.zeros(3, np.float32))
    nan1, nan2 = n.const(np.full(3, np.nan, np.float32)), n.const(np.full(3, np.nan, np.float32))
    m1, m2 = n("mul", "x", c1), n("mul", "x", c2)
    z = n("add", n("add", "x", zero), n("add", "x", minus_zero))
    q = n("add", n("max", "x", nan1), n("max", "x", nan2))
    graph = n.graph(n("add", m1, m2), z, q)
    after = check_pass(graph, "cse")
    assert len(after.constants) == 4  # w, 0.0, -0.0 and nan
    assert ops(after).count("mul") == 1 and ops(after).count("max") == 1
    assert ops(after).count("add") == 5


def test_duplicate_graph_outputs_keep_their_names() -> None:
    n = Net(x=(4,))
    y1, y2 = n("exp", "x", out="y1"), n("exp", "x", out="y2")
    after = check_pass(n.graph(y1, y2), "cse")
    assert ops(after) == ["exp", "exp"]  # both are outputs: neither can take the other's name
    n = Net(x=(4,))
    e1, e2 = n("exp", "x"), n("exp", "x", out="y")
    after = check_pass(n.graph(n("relu", e1, out="r"), e2), "cse")
    assert ops(after) == ["exp", "relu"] and after.nodes[0].outputs == ("y",)

"""Dead-code elimination: only what reaches a graph output stays."""

from __future__ import annotations

from tests.passes.support import Net, check_pass, ops, weights


def test_dead_nodes_and_constants_go() -> None:
    n = Net(x=(2, 6))
    unused = n("mul", "x", n.const(weights(2, 6)))
    n("exp", unused)
    first, _ = n.multi("split", "x", n=2, axis=1, sizes=(3, 3))  # one output read: stays whole
    graph = n.graph(n("relu", first))
    after = check_pass(graph, "dce")
    assert ops(after) == ["split", "relu"]
    assert not after.constants and set(after.types) == {"x", *(o for node in after.nodes
                                                               for o in node.outputs)}


def test_a_live_graph_is_unchanged() -> None:
    n = Net(x=(3,))
    graph = n.graph(n("add", n("relu", "x"), n.const(weights(3))))
    assert check_pass(graph, "dce") == graph

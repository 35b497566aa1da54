"""Algebraic simplification: no-ops removed, reshape and transpose chains collapsed, graph
outputs kept under their names. (Batch-norm and scale/bias folding: test_simplify_affine.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.passes.support import Net, check_pass, ops, weights


def no_op_graphs() -> list[tuple[str, Net, str]]:
    """(label, net, the no-op's output) with x: [2, 3, 4] feeding each no-op then exp."""
    cases = []

    def case(label: str, build) -> None:  # type: ignore[no-untyped-def]
        n = Net(x=(2, 3, 4))
        cases.append((label, n, build(n)))

    case("identity", lambda n: n("identity", "x"))
    case("reshape", lambda n: n("reshape", "x", shape=(2, 3, 4)))
    case("transpose", lambda n: n("transpose", "x", perm=(0, 1, 2)))
    case("slice", lambda n: n("slice", "x", axes=(1, 2), starts=(0, 0), ends=(3, 4),
                              steps=(1, 1)))
    case("pad", lambda n: n("pad", "x", pads=(0,) * 6, mode="reflect", value=0.0))
    case("cast", lambda n: n("cast", "x", to="float32"))
    case("mul", lambda n: n("mul", n.const(np.ones((3, 1), np.float32)), "x"))
    case("add", lambda n: n("add", "x", n.const(np.zeros(4, np.float32))))
    case("sub", lambda n: n("sub", "x", n.const(np.float32(0))))
    case("div", lambda n: n("div", "x", n.const(np.ones((1, 1, 1), np.float32))))
    return cases


@pytest.mark.parametrize(("label", "net", "value"), no_op_graphs(),
                         ids=[c[0] for c in no_op_graphs()])
def test_no_ops_go(label: str, net: Net, value: str) -> None:
    after = check_pass(net.graph(net("exp", value)), "simplify")
    assert ops(after) == ["exp"] and after.nodes[0].inputs == ("x",)


def test_no_ops_that_change_the_value_stay() -> None:
    n = Net(x=(3, 4))
    grows = n("mul", "x", n.const(np.ones((2, 3, 4), np.float32)))  # broadcasts to a new shape
    negates = n("sub", n.const(np.zeros(4, np.float32)), "x")
    reverse = n("slice", "x", axes=(1,), starts=(3,), ends=(-1,), steps=(-1,))
    plus_one = n("add", "x", n.const(np.ones(4, np.float32)))
    graph = n.graph(n("exp", grows), negates, n("exp", reverse), plus_one)
    assert ops(check_pass(graph, "simplify")) == ops(graph)


def test_a_removed_output_keeps_its_name() -> None:
    n = Net(x=(2, 3))
    r = n("relu", "x")
    y = n("identity", r, out="y")
    z = n("identity", "x", out="z")  # an input cannot take an output's name: the copy stays
    after = check_pass(n.graph(y, z), "simplify")
    assert [(node.op, node.outputs) for node in after.nodes] == [("relu", ("y",)),
                                                                 ("identity", ("z",))]


def test_an_output_that_is_also_read_later_keeps_its_name() -> None:
    n = Net(x=(2, 3))
    y = n("reshape", n("exp", "x"), shape=(2, 3), out="y")
    graph = n.graph(y, n("add", y, n("identity", y)))
    after = check_pass(graph, "simplify")
    assert ops(after) == ["exp", "add"] and after.nodes[1].inputs == ("y", "y")


def test_reshape_chains_merge() -> None:
    n = Net(x=(2, 3, 4))
    a = n("reshape", n("reshape", n("reshape", "x", shape=(6, 4)), shape=(24,)), shape=(4, 6))
    back = n("reshape", n("reshape", "x", shape=(24,)), shape=(2, 3, 4))
    after = check_pass(n.graph(n("exp", a), n("exp", back)), "simplify")
    assert ops(after) == ["reshape", "exp", "exp"]
    assert after.nodes[0].inputs == ("x",) and after.nodes[2].inputs == ("x",)


def test_a_reshape_read_elsewhere_stays_for_that_reader() -> None:
    n = Net(x=(2, 3, 4))
    mid = n("reshape", "x", shape=(6, 4))
    out = n("reshape", mid, shape=(24,))
    after = check_pass(n.graph(n("exp", mid), out), "simplify")
    assert sorted(ops(after)) == ["exp", "reshape", "reshape"]
    assert all(node.inputs == ("x",) for node in after.nodes if node.op == "reshape")


def test_transposes_compose_and_cancel() -> None:
    n = Net(x=(2, 3, 4))
    t = n("transpose", n("transpose", "x", perm=(1, 2, 0)), perm=(2, 0, 1))  # identity
    u = n("transpose", n("transpose", "x", perm=(1, 0, 2)), perm=(0, 2, 1))
    after = check_pass(n.graph(n("exp", t), n("exp", u)), "simplify")
    transpose, exp_t, _ = after.nodes
    assert ops(after) == ["transpose", "exp", "exp"] and exp_t.inputs == ("x",)
    assert transpose.inputs == ("x",) and transpose.attr("perm") == (1, 2, 0)


def test_a_transpose_of_unit_axes_is_a_reshape_and_merges() -> None:
    n = Net(x=(1, 8, 1, 5))
    t = n("transpose", "x", perm=(2, 1, 0, 3))  # moves the 1s only
    r = n("reshape", t, shape=(8, 5))
    after = check_pass(n.graph(n("exp", r)), "simplify")
    assert ops(after) == ["reshape", "exp"] and after.nodes[0].inputs == ("x",)


def test_reshape_then_transpose_is_left_alone() -> None:
    n = Net(x=(4, 6))
    t = n("transpose", n("reshape", "x", shape=(4, 2, 3)), perm=(0, 2, 1))
    graph = n.graph(n("reshape", t, shape=(4, 6)))
    assert ops(check_pass(graph, "simplify")) == ["reshape", "transpose", "reshape"]


def test_a_transpose_reshape_transpose_round_trip_is_one_reshape() -> None:
    """[P, C] -> [C, P] -> NCHW -> NHWC: every element stays in place (the int8 GEMM results
    a channels-last depthwise conv reads); one more axis swapped keeps the moves."""
    n = Net(x=(12, 8))
    nchw = n("reshape", n("transpose", "x", perm=(1, 0)), shape=(1, 8, 3, 4))
    back = n("transpose", nchw, perm=(0, 2, 3, 1))
    other = n("transpose", nchw, perm=(0, 3, 2, 1))
    after = check_pass(n.graph(n("exp", back), n("exp", other)), "simplify")
    exp_back = next(x for x in after.nodes if x.op == "exp" and x.outputs[0] in after.outputs[:1])
    same = next(x for x in after.nodes if x.outputs[0] == exp_back.inputs[0])
    assert same.op == "reshape" and same.inputs == ("x",)
    assert ops(after).count("transpose") == 2  # `other` still moves elements


def test_simplify_reaches_a_fixed_point() -> None:
    n = Net(x=(2, 3))
    v = "x"
    for _ in range(6):
        v = n("identity", n("transpose", n("reshape", v, shape=(3, 2)), perm=(1, 0)))
        v = n("transpose", v, perm=(1, 0))
        v = n("reshape", v, shape=(2, 3))
    graph = n.graph(n("add", v, n.const(weights(2, 3))))
    # each round is reshape, transpose, transpose back, reshape back: nothing stays
    after = check_pass(graph, "simplify")
    assert ops(after) == ["add"] and after.nodes[0].inputs[0] == "x"


@pytest.mark.parametrize(("power", "muls"), [(2.0, 1), (3.0, 2), (2.5, 0)])
def test_small_integer_powers_become_multiplies(power: float, muls: int) -> None:
    n = Net(x=(2, 8))
    y = n("pow", "x", n.const(np.float32(power)))
    after = check_pass(n.graph(n("tanh", y)), "simplify")
    assert ops(after).count("mul") == muls and ops(after).count("pow") == (muls == 0)


@pytest.mark.parametrize(("index", "axis", "expected"), [
    (np.array(1), 0, ["slice", "reshape", "exp"]),       # q, k, v = qkv[0], qkv[1], qkv[2]
    (np.array(-1), 2, ["slice", "reshape", "exp"]),      # a negative index wraps
    (np.array([2]), 1, ["slice", "exp"]),                # [i] keeps the axis
    (np.array([0, 2]), 1, ["gather", "exp"]),            # two indices: still a gather
    (np.array(5), 0, ["gather", "exp"]),                 # out of range: the gather's rule
])
def test_a_gather_at_one_constant_index_is_a_slice(index, axis, expected) -> None:
    n = Net(x=(3, 4, 5))
    y = n("gather", "x", n.const(index.astype(np.int64)), axis=axis)
    graph = n.graph(n("exp", y))
    if expected[0] == "gather" and index.ndim == 0:  # reading past the end: not a number test
        from deepc.passes.manager import PASSES, PassContext

        assert ops(PASSES["simplify"](graph, PassContext())) == expected
        return
    assert ops(check_pass(graph, "simplify")) == expected

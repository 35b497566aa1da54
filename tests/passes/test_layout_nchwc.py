"""The nchwc_layout pass: convs to the blocked layout, the layout carried through
elementwise ops and concats, transforms only at the edges; numbers kept."""

from __future__ import annotations

import pytest

from deepc.passes import PassContext
from deepc.target import load_target
from tests.passes.support import Net, check_pass, ops, weights


def ctx(target: str = "host") -> PassContext:
    c = PassContext()
    c.target = load_target(target)
    return c


def lanes(target: str = "host") -> int:
    return load_target(target).vector_bits // 32


def conv(n: Net, x: str, c: int, o: int, k: int = 3, group: int = 1, **attrs) -> str:
    return n("conv", x, n.const(weights(o, c // group, k, k)), n.const(weights(o)),
             pads=(k // 2,) * 4, group=group, **attrs)


def test_resnet_block_stays_blocked_between_convs() -> None:
    b = lanes()
    n = Net(x=(1, 3, 12, 12))
    a = n("relu", conv(n, "x", 3, 2 * b, k=7, strides=(2, 2)))
    y = n("relu", conv(n, a, 2 * b, 2 * b))
    y = n("add", n("mul", y, n.const(weights(2 * b, 1, 1))), a)
    s = n("mul", y, n("sigmoid", y))
    cat = n("concat", s, conv(n, s, 2 * b, b, k=1), axis=1)
    g = n("global_avg_pool", cat)
    out = n("reshape", g, shape=(1, 3 * b))
    after = check_pass(n.graph(out), "nchwc_layout", ctx())
    assert ops(after).count("conv_nchwc") == 3 and "conv" not in ops(after)
    # one transform into the first conv; the pooled pixel unblocks as a reshape
    assert ops(after).count("layout_transform") == 1 and ops(after).count("reshape") == 2
    pool = next(x for x in after.nodes if x.op == "global_avg_pool")
    assert pool.attr("layout") == "NCHWc"


def test_convs_whose_channels_do_not_divide_stay_plain() -> None:
    b = lanes()
    n = Net(x=(1, b, 6, 6))
    y = conv(n, "x", b, b + 1)  # output channels do not divide
    z = conv(n, conv(n, y, b + 1, 2 * b), 2 * b, b)
    after = check_pass(n.graph(z), "nchwc_layout", ctx())
    assert ops(after) == ["conv", "layout_transform", "conv_nchwc", "conv_nchwc",
                          "layout_transform"]


def test_depthwise_and_grouped_convs() -> None:
    b = lanes()
    n = Net(x=(1, 2 * b, 7, 7))
    d = conv(n, conv(n, "x", 2 * b, 2 * b, k=1), 2 * b, 2 * b, group=2 * b, strides=(2, 2))
    g = conv(n, n("clip", d, min=0.0, max=6.0), 2 * b, 2 * b, group=2)  # a block per group
    # groups of 2 (AVX2) or 4 (AVX-512) outputs, each too narrow for a block of its own: merged
    # into blocks of b (groups of b // 2 would be half-register blocks of their own on AVX2)
    m = conv(n, g, 2 * b, 2 * b, group=8)
    p = conv(n, m, 2 * b, 3 * b, group=b)  # groups of 3 fit no block: plain
    after = check_pass(n.graph(p), "nchwc_layout", ctx())
    assert ops(after).count("conv_nchwc") == 4 and ops(after).count("conv") == 1
    assert after.constants[after.nodes[2].inputs[1]].shape == (2, 1, 3, 3, 1, b)
    grouped = [x for x in after.nodes if x.op == "conv_nchwc"][2:]
    assert [x.attr("group") for x in grouped] == [2, 2]
    assert after.constants[grouped[1].inputs[1]].shape == (2, 1, 3, 3, b, b)


@pytest.mark.parametrize("target", ["rpi3", "host"])
def test_block_follows_the_target_vector_width(target: str) -> None:
    c = 16  # divides by every target's lanes (4 on NEON, 8 on AVX2, 16 on AVX-512)
    n = Net(x=(1, c, 5, 5))
    after = check_pass(n.graph(conv(n, conv(n, "x", c, c), c, c)), "nchwc_layout",
                       ctx(target))
    node = next(x for x in after.nodes if x.op == "conv_nchwc")
    assert after.types[node.outputs[0]].shape[-1] == lanes(target)


def test_no_target_or_a_lone_conv_leaves_the_graph() -> None:
    n = Net(x=(1, 8, 5, 5))
    graph = n.graph(conv(n, "x", 8, 8))
    assert check_pass(graph, "nchwc_layout", ctx()) is graph
    n = Net(x=(1, 8, 5, 5))
    graph = n.graph(conv(n, conv(n, "x", 8, 8), 8, 8))
    assert check_pass(graph, "nchwc_layout") is graph


def test_channels_that_fill_half_a_register_block_by_half() -> None:
    b = lanes()
    half = b // 2  # 8 channels on a 16-lane target block by 8
    n = Net(x=(1, half, 6, 6))
    y = n("relu", conv(n, "x", half, half))
    d = conv(n, y, half, half, group=half)
    z = conv(n, n("add", d, y), half, 2 * b, k=1)
    after = check_pass(n.graph(z), "nchwc_layout", ctx())
    assert ops(after).count("conv_nchwc") == 3 and "conv" not in ops(after)
    blocks = [after.types[x.outputs[0]].shape[-1] for x in after.nodes if x.op == "conv_nchwc"]
    assert blocks == [half, half, b]
    # the last conv reads its input in the block it already has
    last = [x for x in after.nodes if x.op == "conv_nchwc"][-1]
    assert after.constants[last.inputs[1]].shape[4:] == (half, b)
    assert ops(after).count("layout_transform") == 2


def test_parts_of_different_blocks_concatenate_in_the_narrower() -> None:
    b = lanes()
    n = Net(x=(1, b, 5, 5))
    a = conv(n, "x", b, b)
    h = conv(n, "x", b, b // 2 * 3)  # divides by b/2 only
    cat = n("concat", a, h, axis=1)
    after = check_pass(n.graph(conv(n, cat, b // 2 * 5, b, k=1)), "nchwc_layout", ctx())
    node = next(x for x in after.nodes if x.op == "concat")
    assert after.types[node.outputs[0]].shape[-1] == b // 2
    assert ops(after).count("conv_nchwc") == 3


def test_channels_a_little_short_of_whole_registers_are_padded() -> None:
    """Squeezenet's classifier: 1000 channels on a 16-lane target take 63 full blocks (the
    last half zeros) rather than 125 half-register ones; pad lanes never reach a channel."""
    b = lanes()
    c = 8 * b - 2  # two lanes short of 8 registers
    n = Net(x=(1, b, 6, 6))
    y = n("relu", n("add", conv(n, conv(n, "x", b, b), b, c, k=1), n.const(weights(c, 1, 1))))
    z = conv(n, y, c, b, k=1)  # reads the padded value in place (its pad lanes hold 0)
    g = n("reshape", n("global_avg_pool", y), shape=(1, c))
    after = check_pass(n.graph(g, z), "nchwc_layout", ctx())
    convs = [x for x in after.nodes if x.op == "conv_nchwc"]
    assert len(convs) == 3
    assert after.types[convs[1].outputs[0]].shape == (1, 8, 6, 6, b)
    assert after.constants[convs[1].inputs[2]].shape == (8 * b,)
    unblocks = [x for x in after.nodes if x.op == "layout_transform"
                and x.attr("dst_layout") == "NCHW" and after.types[x.inputs[0]].shape[1] == 8]
    assert [x.attr("channels") for x in unblocks] == [c]  # the pooled pixel
    assert after.constants[convs[2].inputs[1]].shape[1:] == (8, 1, 1, b, b)  # 8 input blocks


def test_a_register_and_a_half_pads_to_two_rather_than_blocking_by_half() -> None:
    b = lanes()
    n = Net(x=(1, b, 6, 6))
    c = b + b // 2  # 24 on a 16-lane target: padding to 32 adds a third, half blocks double
    after = check_pass(n.graph(conv(n, conv(n, "x", b, c), c, b)), "nchwc_layout", ctx())
    first, second = (x for x in after.nodes if x.op == "conv_nchwc")
    assert after.types[first.outputs[0]].shape[-2:] == (6, b)
    assert after.types[first.outputs[0]].shape[1] == 2
    # the next conv reads the padded value in place, its weights zero over the pad lanes
    assert second.inputs[0] == first.outputs[0]
    assert ops(after).count("layout_transform") == 2


def test_a_large_pad_is_not_taken() -> None:
    b = lanes()
    n = Net(x=(1, b, 6, 6))
    c = b + 2  # 18 on a 16-lane target: padding to 32 would add more than it keeps
    after = check_pass(n.graph(conv(n, conv(n, "x", b, c), c, b)), "nchwc_layout", ctx())
    assert "conv" in ops(after)


def test_padded_values_flow_into_depthwise_and_pointwise_convs() -> None:
    """A shufflenet branch with 58 channels on a 16-lane target: every conv blocks by 16
    over 64 channels, the depthwise conv and the next pointwise one read the padded value
    as it is (its pad lanes finite: zero weights keep them out of the channels)."""
    b = lanes()
    c = 4 * b - 6 if b == 16 else 8 * b - 2  # 58 on 16 lanes; within the pad on others
    n = Net(x=(1, c, 8, 8))
    y = n("relu", conv(n, "x", c, c, k=1))
    d = n("add", n("mul", conv(n, y, c, c, group=c), n.const(weights(c, 1, 1))),
          n.const(weights(c, 1, 1)))
    z = n("relu", conv(n, d, c, c, k=1))
    after = check_pass(n.graph(z), "nchwc_layout", ctx())
    convs = [x for x in after.nodes if x.op == "conv_nchwc"]
    assert len(convs) == 3
    assert all(after.types[x.outputs[0]].shape[-1] == b for x in convs)
    # one transform in, one out: the padded values are read in place
    assert ops(after).count("layout_transform") == 2
    assert convs[1].attr("group") == after.types[convs[1].outputs[0]].shape[1] * b


def test_pad_lanes_that_may_not_be_finite_are_not_read() -> None:
    b = lanes()
    c = 8 * b - 2
    n = Net(x=(1, b, 6, 6))
    y = n("log", conv(n, "x", b, c, k=1))  # log(0) = -inf in the pad lanes
    z = conv(n, y, c, b, k=1)
    after = check_pass(n.graph(z), "nchwc_layout", ctx())
    last = [x for x in after.nodes if x.op == "conv_nchwc"][-1]
    assert after.types[last.inputs[0]].shape[-1] != b  # reblocked from the plain channels

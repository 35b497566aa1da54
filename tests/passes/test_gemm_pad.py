"""The gemm_pad pass: constant GEMM weights whose columns fall a little short of whole
registers are zero-padded, the epilogue padded along, a slice after; numbers kept."""

from __future__ import annotations

from deepc.passes import PASSES, PassContext
from deepc.target import load_target
from tests.passes.support import Net, check_pass, ops, weights


def ctx() -> PassContext:
    c = PassContext()
    c.target = load_target("host")
    return c


def lanes() -> int:
    return load_target("host").vector_bits // 32


def test_matmul_columns_pad_to_whole_registers_through_the_epilogue() -> None:
    n = 8 * lanes() - 2  # 1000 classes on a 16-lane target: two lanes short of 63 registers
    net = Net(x=(1, 6, 24))
    y = net("add", net("matmul", "x", net.const(weights(24, n))), net.const(weights(n)))
    out = net("relu", net("mul", y, net.const(2.0)))
    after = check_pass(net.graph(out), "gemm_pad", ctx())
    assert ops(after) == ["matmul", "add", "mul", "relu", "slice"]
    assert after.types[after.nodes[0].inputs[1]].shape == (24, 8 * lanes())
    assert after.nodes[-1].outputs == (out,) and after.types[out].shape == (1, 6, n)
    assert after.types[after.nodes[-1].inputs[0]].shape == (1, 6, 8 * lanes())
    # the slice stays out of the GEMM's kernel, whose loops would run to n columns again
    fused = PASSES["fuse"](after, ctx())
    groups = [x.attr("fuse_group") for x in fused.nodes]
    assert groups[-1] not in groups[:-1] and len(set(groups[:-1])) == 1


def test_gemm_with_transposed_weights_and_bias() -> None:
    n = 8 * lanes() - 2
    net = Net(x=(5, 24))
    y = net("gemm", "x", net.const(weights(n, 24)), net.const(weights(n)), trans_b=1)
    after = check_pass(net.graph(y), "gemm_pad", ctx())
    assert ops(after) == ["gemm", "slice"]
    assert after.types[after.nodes[0].inputs[1]].shape == (8 * lanes(), 24)
    assert after.types[after.nodes[0].inputs[2]].shape == (8 * lanes(),)


def test_what_padding_would_not_help_is_left() -> None:
    b = lanes()
    for shape, n in [((1, 24), 8 * b - 2),  # one row: a matrix-vector product, memory-bound
                     ((6, 24), 2 * b),  # whole registers already
                     ((6, 24), b + b // 2)]:  # a third more columns
        net = Net(x=shape)
        graph = net.graph(net("matmul", "x", net.const(weights(24, n))))
        assert check_pass(graph, "gemm_pad", ctx()) is graph
    net = Net(x=(6, 24), w=(24, 8 * b - 2))  # weights not constant
    graph = net.graph(net("matmul", "x", "w"))
    assert check_pass(graph, "gemm_pad", ctx()) is graph

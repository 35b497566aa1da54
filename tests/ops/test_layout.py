"""layout_transform and conv_nchwc: numpy references against the plain ops, and the compute
definitions (numpy-evaluated and compiled) against the references."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.compiler.jit_graph import run_graph_jit
from deepc.ir.graph import Attrs
from deepc.ir.tensor import reduce_axis
from deepc.lowering.te_graph import run_graph_te
from deepc.ops import get_op
from deepc.ops.conv_nchwc import merge_groups, pad_copy_pays, weight_to_blocked
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array, unblock_array
from tests.passes.support import Net, weights

RNG = np.random.default_rng(3)


def run_all_ways(graph, feeds):  # type: ignore[no-untyped-def]
    """The graph through references, numpy-evaluated computes and compiled kernels."""
    want = run_graph(graph, feeds)
    for run in (run_graph_te, run_graph_jit):
        got = run(graph, feeds)
        for k in graph.outputs:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5, err_msg=k)
    return want


@pytest.mark.parametrize("block", [1, 4, 8])
def test_layout_transform_round_trip(block: int) -> None:
    x = RNG.standard_normal((2, 16, 5, 3)).astype(np.float32)
    n = Net(x=x.shape)
    b = n("layout_transform", "x", src_layout="NCHW", dst_layout=f"NCHW{block}c")
    y = n("layout_transform", b, src_layout=f"NCHW{block}c", dst_layout="NCHW")
    out = run_all_ways(n.graph(b, y), {"x": x})
    np.testing.assert_array_equal(out[y], x)
    # channel cb*block + ci lands at [:, cb, ..., ci]
    np.testing.assert_array_equal(out[b][:, 1, :, :, 0], x[:, block])


@pytest.mark.parametrize("block", [4, 8])
def test_layout_transform_pads_channels_to_whole_blocks(block: int) -> None:
    x = RNG.standard_normal((1, 10, 4, 3)).astype(np.float32)
    n = Net(x=x.shape)
    b = n("layout_transform", "x", src_layout="NCHW", dst_layout=f"NCHW{block}c", channels=10)
    y = n("layout_transform", b, src_layout=f"NCHW{block}c", dst_layout="NCHW", channels=10)
    out = run_all_ways(n.graph(b, y), {"x": x})
    np.testing.assert_array_equal(out[y], x)
    assert out[b].shape == (1, -(-10 // block), 4, 3, block)
    np.testing.assert_array_equal(out[b][:, -1, :, :, 10 % block:], 0)


def test_layout_transform_rejects_bad_layouts() -> None:
    op = get_op("layout_transform")
    from deepc.ir.types import TensorType
    with pytest.raises(ValueError, match="divisible"):
        op.infer_types([TensorType((1, 6, 2, 2), "float32")],
                       Attrs({"src_layout": "NCHW", "dst_layout": "NCHW4c"}))
    with pytest.raises(ValueError, match="do not fill"):
        op.infer_types([TensorType((1, 3, 2, 2, 4), "float32")],
                       Attrs({"src_layout": "NCHW4c", "dst_layout": "NCHW", "channels": 8}))
    with pytest.raises(ValueError, match="exactly one"):
        op.infer_types([TensorType((1, 6, 2, 2), "float32")],
                       Attrs({"src_layout": "NCHW", "dst_layout": "NCHW"}))


CASES = [  # (C, O, ic, oc, group, stride, pad, kernel, dilation)
    (16, 16, 8, 8, 1, 1, 1, 3, 1),
    (3, 8, 3, 8, 1, 2, 3, 7, 1),
    (8, 16, 4, 8, 1, 2, 0, 1, 1),
    (16, 8, 8, 8, 1, 1, 2, 3, 2),
    (16, 16, 8, 8, 16, 1, 1, 3, 1),
    (8, 8, 4, 4, 8, 2, 2, 5, 1),
    (16, 16, 4, 4, 2, 1, 1, 3, 1),  # grouped: two output blocks per group
    (16, 24, 8, 4, 2, 2, 1, 3, 1),  # grouped: a group's 8 inputs are one block
    (24, 16, 4, 8, 2, 1, 0, 1, 1),  # grouped 1x1, three input blocks per group
]


@pytest.mark.parametrize(("c", "o", "ic", "oc", "group", "stride", "pad", "k", "dil"), CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv_nchwc_matches_conv(c: int, o: int, ic: int, oc: int, group: int, stride: int,
                                 pad: int, k: int, dil: int, bias: bool) -> None:
    x = RNG.standard_normal((1, c, 11, 10)).astype(np.float32)
    w, b = weights(o, c // group, k, k), weights(o)
    attrs = dict(strides=(stride, stride), pads=(pad,) * 4, dilations=(dil, dil), group=group)
    plain = get_op("conv").evaluate([x, w, b if bias else None], Attrs(attrs))[0]
    n = Net(x=(1, c // ic, 11, 10, ic))
    wb = n.const(weight_to_blocked(w, ic, oc, group == c))
    y = n("conv_nchwc", "x", wb, *([n.const(b)] if bias else []), **attrs)
    out = run_all_ways(n.graph(y), {"x": block_array(x, ic)})
    assert out[y].shape[-1] == oc
    np.testing.assert_allclose(unblock_array(out[y]), plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("size", "k", "copy"), [(32, 9, True), (56, 7, False), (14, 3, False)])
def test_large_depthwise_kernels_read_a_padded_copy(size: int, k: int, copy: bool) -> None:
    """9x9 taps (ConvMixer) cost more as masks than as a padded copy; 7x7 and 3x3 do not."""
    taps = [reduce_axis(k, "kh"), reduce_axis(k, "kw")]
    assert pad_copy_pays((1, 1, size, size, 16), taps, (1, 1), (k // 2,) * 4, (1, 1)) == copy
    assert not pad_copy_pays((1, 1, size, size, 16), taps, (1, 1), (0,) * 4, (1, 1))


@pytest.mark.parametrize(("stride", "copy"), [(1, True), (2, False)])
def test_large_depthwise_matches_conv(stride: int, copy: bool) -> None:
    """9x9 depthwise on a padded copy (stride 1) and on masked reads (stride 2)."""
    x = RNG.standard_normal((1, 8, 24, 23)).astype(np.float32)
    out_size = (-(-24 // stride), -(-23 // stride))
    taps = [reduce_axis(9, "kh"), reduce_axis(9, "kw")]
    assert pad_copy_pays((1, 2, *out_size, 4), taps, (stride,) * 2, (4,) * 4, (1, 1)) == copy
    w, b = weights(8, 1, 9, 9), weights(8)
    attrs = dict(strides=(stride, stride), pads=(4,) * 4, dilations=(1, 1), group=8)
    plain = get_op("conv").evaluate([x, w, b], Attrs(attrs))[0]
    n = Net(x=(1, 2, 24, 23, 4))
    y = n("conv_nchwc", "x", n.const(weight_to_blocked(w, 4, 4, True)), n.const(b), **attrs)
    out = run_all_ways(n.graph(y), {"x": block_array(x, 4)})
    np.testing.assert_allclose(unblock_array(out[y]), plain, rtol=1e-5, atol=1e-5)


def test_merged_groups_are_the_same_conv() -> None:
    """Groups of 2 outputs merged into blocks of 8: block-diagonal weights, same numbers."""
    x = RNG.standard_normal((1, 16, 9, 9)).astype(np.float32)
    w, b = weights(16, 2, 3, 3), weights(16)
    attrs = dict(strides=(1, 1), pads=(1,) * 4, group=8)
    plain = get_op("conv").evaluate([x, w, b], Attrs(attrs))[0]
    merged, group = merge_groups(w, 8, 8)
    assert group == 2 and merged.shape == (16, 8, 3, 3)
    n = Net(x=(1, 2, 9, 9, 8))
    y = n("conv_nchwc", "x", n.const(weight_to_blocked(merged, 8, 8, False)), n.const(b),
          **{**attrs, "group": group})
    out = run_all_ways(n.graph(y), {"x": block_array(x, 8)})
    np.testing.assert_allclose(unblock_array(out[y]), plain, rtol=1e-5, atol=1e-5)


def test_conv_nchwc_rejects_mismatched_blocks() -> None:
    from deepc.ir.types import TensorType
    with pytest.raises(ValueError, match="does not fit"):
        get_op("conv_nchwc").infer_types(
            [TensorType((1, 2, 5, 5, 8), "float32"), TensorType((1, 2, 3, 3, 4, 8), "float32")],
            Attrs({"group": 1}))


POOLS = [
    ("max_pool", {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ("max_pool", {"kernel_shape": (3, 3), "strides": (2, 2), "ceil_mode": 1}),
    ("avg_pool", {"kernel_shape": (3, 3), "pads": (1, 1, 1, 1)}),
    ("avg_pool", {"kernel_shape": (2, 2), "strides": (2, 2), "count_include_pad": 1}),
    ("global_avg_pool", {}),
    ("global_max_pool", {}),
]


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_blocked_pools_match_plain_pools(op: str, attrs: dict) -> None:
    x = RNG.standard_normal((1, 8, 9, 10)).astype(np.float32)
    plain = get_op(op).evaluate([x], Attrs(attrs))[0]
    n = Net(x=(1, 2, 9, 10, 4))
    y = n(op, "x", layout="NCHWc", **attrs)
    out = run_all_ways(n.graph(y), {"x": block_array(x, 4)})
    np.testing.assert_allclose(unblock_array(out[y]), plain, rtol=1e-6, atol=1e-6)

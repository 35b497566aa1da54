"""Tiled matrix-product and warp-reduction GPU kernels: which stages they take, and their
CUDA C run on the CPU (tests/backends/cuda/omp_blocks.py) against numpy references."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from deepc.backends.gpu.render import render_cuda, tf32_allowed
from deepc.lowering.kernels import graph_kernels
from deepc.target import load_target


def _graph(nodes, x_shape, inits):  # type: ignore[no-untyped-def]
    from onnx import helper

    from deepc.frontends.onnx import convert

    proto = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, list(x_shape))],
        [helper.make_tensor_value_info("y", 1, None)],
        initializer=[helper.make_tensor(k, 1, v.shape, v.ravel()) for k, v in inits.items()])
    return convert(helper.make_model(proto, opset_imports=[helper.make_opsetid("", 17)]))


@pytest.fixture(autouse=True)
def rings_by_default(monkeypatch):  # type: ignore[no-untyped-def]
    """The kernels under test take cp.async rings by default where the target has them
    (RING_BY_DEFAULT is off in the product until timed on a GPU), so the `pipelined` cases
    test the default ring choice; without cp.async they are fetched through registers."""
    from deepc.schedule import gpu_gemm_match

    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", True)


def product(m: int, n: int, k: int):  # type: ignore[no-untyped-def]
    """A matched product's sizes as the tile policy reads them (not grouped)."""
    from types import SimpleNamespace

    return SimpleNamespace(m=m, n=n, k=k, g_axes=())


def _small_gpu(sms: int = 1, pipelined: bool = True):  # type: ignore[no-untyped-def]
    """sm90 with one SM: test-sized problems fill it, so the tiled kernels are chosen;
    without cp.async (pipelined=False) its tiles are fetched through registers."""
    target = load_target("cuda-sm90")
    target = replace(target, gpu=replace(target.gpu, sm_count=sms))
    return target if pipelined else replace(
        target, intrinsics=replace(target.intrinsics, async_copy=()))


def _conv_graph(rng, oc: int, group: int = 1, ic: int = 16, hw: int = 12):  # type: ignore[no-untyped-def]
    from onnx import helper

    w = rng.standard_normal((oc, ic // group, 3, 3)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=group),
             helper.make_node("Relu", ["c"], ["y"])]
    return _graph(nodes, (2, ic, hw, hw), {"w": w, "b": b})


def _notes(records: dict) -> str:
    return str(records)


def test_conv_and_matmul_stages_become_tiled_gemms() -> None:
    rng = np.random.default_rng(0)
    target = _small_gpu()
    for graph, want in ((_conv_graph(rng, 64), "gemm 288x64x144"),
                        (_conv_graph(rng, 16, group=16), None)):  # depthwise: no GEMM
        _, _, _, records = render_cuda(graph_kernels(graph), target)
        assert (want in _notes(records)) if want else "gemm" not in _notes(records)


def test_too_small_for_the_gpu_keeps_one_output_per_thread() -> None:
    rng = np.random.default_rng(0)
    _, _, _, records = render_cuda(graph_kernels(_conv_graph(rng, 64)), load_target("cuda-sm90"))
    assert "gemm" not in _notes(records)  # 288x64 outputs: 5 tiles for 132 SMs


def test_tf32_needs_the_flag_and_the_target_intrinsic(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    target = _small_gpu()
    monkeypatch.delenv("DEEPC_ALLOW_TF32", raising=False)
    assert not tf32_allowed(target)
    assert tf32_allowed(target, True)
    bare = replace(target, intrinsics=replace(target.intrinsics, matrix=()))
    assert not tf32_allowed(bare, True)
    rng = np.random.default_rng(0)
    source, _, _, records = render_cuda(graph_kernels(_conv_graph(rng, 64)), target,
                                        allow_tf32=True)
    assert "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32" in source
    assert "mma.m16n8k8.tf32" in _notes(records)


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ runs the CUDA C here")


@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("oc", [32, 64, 56])
def test_tiled_conv_matches_numpy(oc: int, pipelined: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Shared-memory tiles, register tiles and edge guards (56 channels by 288 rows: partial
    tiles both ways); the input window comes from a compile-time k-offset table."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(oc)
    graph = _conv_graph(rng, oc)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(pipelined=pipelined), {"x": x}, tmp_path)
    assert "gemm" in _notes(records)
    assert ("cp.async" in _notes(records)) == pipelined
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=1e-4, atol=1e-4)


@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("oc,ic", [(56, 16), (64, 16), (128, 16), (64, 32)])
def test_tf32_tiled_conv_matches_numpy(oc: int, ic: int, pipelined: bool, tmp_path,  # type: ignore[no-untyped-def]
                                       monkeypatch) -> None:
    """The mma.sync tiles (fragments from interleaved shared tiles, TF32 rounding) through a
    C model of the PTX fragment layout: to TF32 precision of the numpy reference. K = 144
    ends in a partial k-step (weights loaded one by one); K = 288 is whole steps of 32
    (weights loaded as float4 pairs, two k octets per thread; pipelined, 16-byte cp.asyncs,
    which K = 144 also takes, zero-filled past K). The 128x64 tiles: the 128x128 ones that
    WIDE_BY_DEFAULT gives 128 channels are test_gpu_gemm_wide's."""
    from deepc.ops.interpreter import run_graph
    from deepc.schedule import gpu_gemm_match
    from tests.backends.cuda.omp_blocks import run_blocks

    monkeypatch.setattr(gpu_gemm_match, "WIDE_BY_DEFAULT", False)
    rng = np.random.default_rng(oc)
    graph = _conv_graph(rng, oc, ic=ic)
    x = rng.standard_normal((2, ic, 12, 12)).astype(np.float32)
    target = _small_gpu(pipelined=pipelined)
    source, _, _, records = render_cuda(graph_kernels(graph), target, allow_tf32=True)
    assert ("float4 g_rb4[4]" in source) == (ic == 32 and not pipelined)
    assert ("deepc_cp_async16(" in source) == pipelined
    got, records = run_blocks(graph, target, {"x": x}, tmp_path, allow_tf32=True)
    assert "mma.m16n8k8.tf32" in _notes(records)
    want = run_graph(graph, {"x": x})["y"]
    np.testing.assert_allclose(got["y"], want, rtol=1e-2, atol=2e-2)
    assert np.abs(got["y"] - want).max() > 0  # rounded to TF32, so not bit-equal


@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("m,k,note", [(200, 72, "gemm"), (100, 600, "split-k 2x304")])
def test_tiled_matmul_matches_numpy(m: int, k: int, note: str, pipelined: bool,
                                    tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Partial tiles; and at K = 600 on 100 x 64 outputs (two SMs), a split-K whose last chunk is
    shorter (304 + 296) and ends in a partial K step."""
    from onnx import helper

    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(k)
    w = rng.standard_normal((k, 64)).astype(np.float32)
    graph = _graph([helper.make_node("MatMul", ["x", "w"], ["y"])], (m, k), {"w": w})
    x = rng.standard_normal((m, k)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(2, pipelined), {"x": x}, tmp_path)
    assert note in _notes(records)
    np.testing.assert_allclose(got["y"], x @ w, rtol=1e-4, atol=1e-4)


@needs_gxx
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_warp_reductions_match_numpy(op: str, shuffle: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Lanes combined by shuffles, or (a dialect without them, as OpenCL) by a shared-memory
    tree with barriers."""
    from onnx import helper

    from deepc.backends.cuda.dialect import CUDA
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 8, 15, 15)).astype(np.float32)
    graph = _graph([helper.make_node(op, ["x"], ["y"])], x.shape, {})
    dialect = CUDA if shuffle else replace(CUDA, intrinsics={
        k: v for k, v in CUDA.intrinsics.items() if k != "shfl_xor"})
    got, records = run_blocks(graph, load_target("cuda-sm90"), {"x": x}, tmp_path,
                              dialect=dialect)
    assert "warp reduce 16 x 225" in _notes(records)
    assert ("'shuffle': False" in _notes(records)) != shuffle
    want = x.mean(axis=(2, 3), keepdims=True) if op == "GlobalAveragePool" else \
        x.max(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-5)



@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize(("sms", "tf32", "split", "kc"),
                         [(2, False, 2, 288), (2, True, 2, 288), (8, False, 4, 144),
                          (8, True, 12, 48)])
def test_split_k_conv_matches_numpy(sms: int, tf32: bool, split: int, kc: int, pipelined: bool,
                                    tmp_path) -> None:  # type: ignore[no-untyped-def]
    """100x64 outputs are two 64x64 tiles. On 2 SMs they fill too few block slots: K = 576
    in two chunks over blockIdx.z. On 8 SMs they are too few tiles for the SMs (as ResNet-18's
    last stage at batch 1: eight tiles for 132), so K is split further: four chunks of 144 for
    8 blocks (SIMT), twelve of 48 for 24 (TF32, 4 blocks per SM and shorter chunks). A
    second kernel sums the chunks in order, then adds the bias and applies the ReLU (the
    fused epilogue)."""
    from onnx import helper

    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(5)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = _graph(nodes, (1, 64, 10, 10), {"w": w, "b": b})
    target = _small_gpu(sms, pipelined)
    _, launches, scratch, records = render_cuda(graph_kernels(graph), target, allow_tf32=tf32)
    conv = next(k for k in launches if "conv" in k)
    assert [lc.grid[2] for lc in launches[conv]] == [split, 1]  # the padding read in place
    assert f"split-k {split}x{kc}" in _notes(records)
    assert scratch[conv][-1].shape == (split, 64, 100)
    x = rng.standard_normal((1, 64, 10, 10)).astype(np.float32)
    got, _ = run_blocks(graph, target, {"x": x}, tmp_path, allow_tf32=tf32)
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=tol, atol=tol)


def test_enough_tiles_are_not_split() -> None:
    from deepc.schedule.gpu_gemm_match import GemmTile, split_k

    class Parts:
        m, n, k = 1568, 512, 4608  # ResNet-18's last stage at batch 32

    tile = GemmTile(64, 64, 16, 128, True, 2, 2, min_blocks=3)
    assert split_k(tile, Parts(), 132) == tile  # 200 tiles: two chunks, 400 > 396 slots
    assert split_k(tile, Parts(), 134).split == 2  # 402 slots: one wave
    assert split_k(tile, Parts(), 66) == tile  # 200 tiles fill 198 slots
    assert split_k(tile, Parts(), 1000).split == 8  # at most 8 chunks
    Parts.k = 600
    assert split_k(tile, Parts(), 1000).split == 2  # chunks of at least 256


def test_tf32_tile_policy_on_resnet18_shapes() -> None:
    """On 132 SMs: the second stage fills the GPU with 128x64 tiles; the third and last
    stages only fill it with 64x64 ones, so they take 128x64 tiles split along K within one
    wave; a 1x1 conv too short to split keeps the 64x64 tile. At batch 1, 64x64 tiles split
    to fill the GPU; a 1x1 conv with K = 64 cannot be, and stays one output per thread."""
    from deepc.schedule.gpu_gemm_match import choose_tile

    target = load_target("cuda-sm90")
    pick = {shape: choose_tile(product(*shape), target, True)  # type: ignore[arg-type]
            for shape in ((25088, 128, 1152), (6272, 256, 2304), (1568, 512, 4608),
                          (1568, 512, 256), (49, 512, 4608), (3136, 64, 576), (784, 128, 64))}
    got = {s: (t.bm, t.bn, t.bk, t.split) for s, t in pick.items() if t is not None}
    assert got == {(25088, 128, 1152): (128, 64, 32, 1), (6272, 256, 2304): (128, 64, 32, 2),
                   (1568, 512, 4608): (128, 64, 32, 3), (1568, 512, 256): (64, 64, 16, 1),
                   # batch 1: too few tiles, split until one wave is full (K chunks >= 32)
                   (49, 512, 4608): (64, 64, 16, 58), (3136, 64, 576): (64, 64, 16, 9)}


@needs_gxx
@pytest.mark.parametrize(("ic", "note"), [
    # 24 output channels under a 64-wide mma tile (the narrow rule below): the columns past N
    # are computed from clamped weights and never stored
    (16, "tile 64x64x16 mma.m16n8k8.tf32"),
    # a 32-wide TF32 tile (24 channels over K = 32*9 = 288)
    (32, "x32x32 mma.m16n8k8.tf32")])
def test_narrow_tf32_tiles_match_numpy(ic: int, note: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Narrow products' TF32 tiles against the reference."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(24 if ic == 16 else 32)
    graph = _conv_graph(rng, 24, ic=ic, hw=16)
    x = rng.standard_normal((2, ic, 16, 16)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(), {"x": x}, tmp_path, allow_tf32=True)
    assert note in _notes(records)
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=1e-2, atol=2e-2)


def test_narrow_products_with_many_tiles_are_tiled() -> None:
    """A product narrower than the tile (N = 24 or 32 under bn = 64) is tiled when its tiles
    fill several waves and K gives several k-steps (MobileNet-V2's projections at batch 32);
    at batch 1 (too few tiles) and over a first conv's K = 27 it stays one output per thread.
    In fp32 the 128x32 SIMT tile covers N = 24 and 32; N = 40 takes the 64x64 one."""
    from deepc.schedule.gpu_gemm_match import choose_tile

    target = load_target("cuda-sm90")
    pick = {shape: choose_tile(product(*shape), target, True)  # type: ignore[arg-type]
            for shape in ((100352, 24, 96), (100352, 24, 144), (25088, 32, 192),
                          (401408, 32, 27), (3136, 24, 96), (100352, 16, 96))}
    got = {s: (t.bm, t.bn, t.mma) for s, t in pick.items() if t is not None}
    assert got == {(100352, 24, 96): (64, 64, True), (100352, 24, 144): (64, 64, True),
                   (25088, 32, 192): (64, 64, True)}
    fp32 = choose_tile(product(25088, 40, 480), target, False)  # type: ignore[arg-type]
    assert fp32 is not None and (fp32.bm, fp32.bn, fp32.mma) == (64, 64, False)
    assert choose_tile(product(3136, 40, 480), target, False) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("group,channels,cols", [(2, 64, 32), (4, 64, 16), (32, 128, 8),
                                                  (64, 128, 0)])
def test_grouped_convs_are_one_product_per_group(group: int, channels: int, cols: int) -> None:
    """Channels in 2, 4 or 32 groups: each group's product (M = 2*12*12 rows, C/g columns,
    K = C/g*9) is tiled by the narrowest TF32 tile that covers a group, blockIdx.z running
    the groups. Two channels a group are too narrow a product, and stay one output per
    thread (as depthwise convs do)."""
    rng = np.random.default_rng(group)
    graph = _conv_graph(rng, channels, group=group, ic=channels)
    _, launches, _, records = render_cuda(graph_kernels(graph), _small_gpu(), allow_tf32=True)
    n = channels // group
    if not cols:
        assert "gemm" not in _notes(records)
        return
    assert f"gemm 288x{n}x{n * 9} x{group} groups tile 128x{cols}x" in _notes(records)
    conv = next(k for k in launches if "conv" in k)
    assert launches[conv][-1].grid[2] == group


@needs_gxx
@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("group", [2, 4, 32])
def test_grouped_conv_matches_numpy(group: int, tf32: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Grouped 3x3 convs with bias and ReLU (ResNeXt's 32 groups of 4 channels: columns
    padded to one mma tile of 8, K = 36 ending in a partial k-step) against the reference."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(group)
    ic = 128 if group == 32 else 64
    graph = _conv_graph(rng, ic, group=group, ic=ic, hw=10)
    x = rng.standard_normal((2, ic, 10, 10)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(), {"x": x}, tmp_path, allow_tf32=tf32)
    assert "gemm" in _notes(records)
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=tol, atol=tol)


def test_narrow_long_products_take_32_wide_tf32_tiles() -> None:
    """DenseNet-121's 3x3 convs at batch 32 (32 channels, K = 1152): 32-wide tiles, split
    along K where they are too few for the SMs (6272 and 1568 rows fell to one output per
    thread under the 64-wide tiles); a short K keeps the 64-wide tile."""
    from deepc.schedule.gpu_gemm_match import choose_tile

    target = load_target("cuda-sm90")
    pick = {shape: choose_tile(product(*shape), target, True)  # type: ignore[arg-type]
            for shape in ((100352, 32, 1152), (25088, 32, 1152), (6272, 32, 1152),
                          (1568, 32, 1152), (100352, 32, 192))}
    got = {s: (t.bm, t.bn, t.split) for s, t in pick.items() if t is not None}
    assert got == {(100352, 32, 1152): (128, 32, 1), (25088, 32, 1152): (128, 32, 2),
                   (6272, 32, 1152): (64, 32, 5), (1568, 32, 1152): (64, 32, 18),
                   (100352, 32, 192): (64, 64, 1)}


def test_grouped_products_take_no_split_k_knob() -> None:
    """blockIdx.z runs a grouped conv's groups: a split-K knob is refused, by name; the
    default knobs read back to the default tile."""
    from deepc.errors import ScheduleError
    from deepc.schedule.gpu import default_gemm_knobs, gpu_stages

    rng = np.random.default_rng(4)
    kern = graph_kernels(_conv_graph(rng, 64, group=4, ic=64))[0]
    target = _small_gpu()
    knobs = default_gemm_knobs(kern.func, target, True)
    tiled, _ = gpu_stages(kern.func, target, True, True)
    again, _ = gpu_stages(kern.func, target, True, True, knobs=knobs)
    assert [s.note for s in again] == [s.note for s in tiled]
    with pytest.raises(ScheduleError, match="groups"):
        gpu_stages(kern.func, target, True, True, knobs={**knobs, "s1.split": 2})


@needs_gxx
@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("case", ["qkT", "weights", "broadcast"])
def test_batched_matmul_is_one_product_per_batch(case: str, tf32: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Attention's batched matmuls (batch x heads of 20 x 20 over K = 16, Q K^T from one
    tensor; a batched weight; a weight broadcast over the batch): tiled products, blockIdx.z
    over the batch and head loops both operands read, against the reference. They used to
    run one output per thread (a ViT's attention matmuls at 5 TFLOP/s on an H100)."""
    from onnx import helper

    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(len(case))
    x = rng.standard_normal((2, 3, 20, 16)).astype(np.float32)
    if case == "qkT":
        nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]),
                 helper.make_node("MatMul", ["x", "t"], ["y"])]
        inits: dict = {}
    else:
        shape = (2, 3, 16, 24) if case == "weights" else (3, 16, 24)
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
        inits = {"w": rng.standard_normal(shape).astype(np.float32)}
    graph = _graph(nodes, x.shape, inits)
    got, records = run_blocks(graph, _small_gpu(), {"x": x}, tmp_path, allow_tf32=tf32)
    groups = {"qkT": 6, "weights": 6, "broadcast": 3}[case]
    assert "groups tile" in _notes(records) and f"x{groups} groups" in _notes(records)
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=tol, atol=tol)

"""The 128x128 TF32 tiles of four 64x64 warp tiles (WIDE_BY_DEFAULT): which products take
them, and their CUDA C run on the CPU (tests/backends/cuda/omp_blocks.py) against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.target import load_target
from tests.backends.test_gpu_gemm import _conv_graph, _notes, _small_gpu, needs_gxx, product
from tests.backends.test_gpu_gemm_fused import tf32


@pytest.fixture
def wide(monkeypatch):  # type: ignore[no-untyped-def]
    from deepc.schedule import gpu_gemm_match

    monkeypatch.setattr(gpu_gemm_match, "WIDE_BY_DEFAULT", True)


def test_wide_tiles_take_products_that_fill_two_blocks_per_sm(wide) -> None:  # type: ignore[no-untyped-def]
    """ResNet-50 at batch 32 on 132 SMs: 128 columns or more over 264 tiles or more take the
    128x128 tile; fewer tiles (its third stage's 3x3, its last stage) or 64 columns keep the
    policy's 128x64 tiles (split along K where they must be)."""
    from deepc.schedule.gpu_gemm_match import choose_tile

    target = load_target("cuda-sm90")
    shapes = ((100352, 256, 64), (25088, 512, 128), (6272, 1024, 256), (100352, 64, 576),
              (25088, 128, 1152), (1568, 512, 4608))
    got = {s: (t.bm, t.bn, t.bk, t.warps_m, t.warps_n, t.min_blocks, t.split)
           for s in shapes if (t := choose_tile(product(*s), target, True)) is not None}
    wide_tile = (128, 128, 16, 2, 2, 2, 1)
    assert got == {(100352, 256, 64): wide_tile, (25088, 512, 128): wide_tile,
                   (6272, 1024, 256): wide_tile, (100352, 64, 576): (128, 64, 32, 2, 2, 3, 1),
                   (25088, 128, 1152): (128, 64, 32, 2, 2, 3, 1),
                   (1568, 512, 4608): (128, 64, 32, 2, 2, 3, 3)}


@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
def test_wide_tf32_tiles_match_numpy(wide, pipelined: bool, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """240 channels over 2 x 23 x 23 pixels (partial tiles both ways), K = 12 x 9 = 108 (a
    partial last k-step of 16), fetched through registers or a cp.async ring: to fp32
    accuracy of the reference on TF32-rounded operands."""
    from deepc.ops.interpreter import run_graph
    from deepc.schedule import gpu_gemm_match
    from tests.backends.cuda.omp_blocks import run_blocks

    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", pipelined)

    graph = _conv_graph(np.random.default_rng(240), 240, ic=12, hw=23)
    x = np.random.default_rng(1).standard_normal((2, 12, 23, 23)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(pipelined=pipelined), {"x": x}, tmp_path,
                              allow_tf32=True)
    assert "tile 128x128x16 mma" in _notes(records)
    assert ("cp.async" in _notes(records)) == pipelined
    rng = np.random.default_rng(240)  # _conv_graph's weights and bias, drawn again
    w = rng.standard_normal((240, 12, 3, 3)).astype(np.float32)
    b = rng.standard_normal(240).astype(np.float32)
    exact = run_graph(_rounded(w, b), {"x": tf32(x)})["y"]
    np.testing.assert_allclose(got["y"], exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())


def _rounded(w: np.ndarray, b: np.ndarray):  # type: ignore[no-untyped-def]
    """_conv_graph's conv with its weights `w` rounded to TF32 (the bias added in fp32)."""
    from onnx import helper

    from tests.backends.test_gpu_gemm import _graph

    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    return _graph(nodes, (2, 12, 23, 23), {"w": tf32(w), "b": b})

"""Tiled 1x1 convs on a GPU with SCALE_UNIT_AXES (the input read at k * H * W, no k table)
and EDGE_GUARDS_ONLY (the epilogue's loads unguarded, its stores tested only where a tile is
partial); their CUDA C run on the CPU (tests/backends/cuda/omp_blocks.py) against numpy."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from deepc.backends.gpu.render import render_cuda
from deepc.lowering.kernels import graph_kernels
from tests.backends.test_gpu_gemm import _graph, _notes, _small_gpu, needs_gxx
from tests.backends.test_gpu_gemm_fused import tf32


@pytest.fixture(autouse=True)
def switches(monkeypatch):  # type: ignore[no-untyped-def]
    from deepc.schedule import gpu_gemm, gpu_gemm_operand

    monkeypatch.setattr(gpu_gemm_operand, "SCALE_UNIT_AXES", True)
    monkeypatch.setattr(gpu_gemm, "EDGE_GUARDS_ONLY", True)


def _pointwise(rng, ic: int, oc: int, stride: int, hw: tuple[int, int], round_w: bool = False):  # type: ignore[no-untyped-def]
    """y = relu(conv1x1(x) + b + r): a residual block's last conv, its sum a fused epilogue."""
    w = rng.standard_normal((oc, ic, 1, 1)).astype(np.float32)
    b = rng.standard_normal(oc).astype(np.float32)
    out = (2, oc, -(-hw[0] // stride), -(-hw[1] // stride))
    r = rng.standard_normal(out).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride, stride]),
        helper.make_node("Add", ["c", "r"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    return _graph(nodes, (2, ic, *hw), {"w": tf32(w) if round_w else w, "b": b, "r": r})


# (ic, oc, stride, hw): 16 x 16 pixels by 64 channels fill whole 128 x 64 tiles (no bounds
# test); 23 x 21 pixels end in a partial row tile, 56 channels in a partial column tile;
# stride 2 reads every other pixel (264 rows: 64 x 64 tiles, the last partial)
CASES = [(32, 64, 1, (16, 16)), (32, 56, 1, (23, 21)), (48, 64, 2, (23, 21))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}to{c[1]}s{c[2]}_{c[3][0]}")
def test_1x1_convs_read_their_input_without_a_k_table(case: tuple) -> None:
    ic, oc, stride, hw = case
    graph = _pointwise(np.random.default_rng(0), ic, oc, stride, hw)
    source, _, _, records = render_cuda(
        graph_kernels(graph), _small_gpu(pipelined=False), allow_tf32=True
    )
    ((knobs),) = [r["knobs"] for r in records["k000_conv"] if "gemm" in r["note"]]
    assert "deepc_kc" not in source and "_ka[" not in source
    rows = 2 * -(-hw[0] // stride) * -(-hw[1] // stride)
    edges = rows % knobs["bm"] != 0, oc % knobs["bn"] != 0
    assert ("(g_m < " in source, "g_n < " in source) == edges
    # partial tiles: the residual read at the last row or column in bounds, unguarded; only
    # the store tests the bounds
    assert ("g_mc = " in source, "g_nc = " in source) == edges
    assert ("g_out = " in source) == any(edges)


@needs_gxx
@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("tf32_on", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}to{c[1]}s{c[2]}_{c[3][0]}")
def test_1x1_conv_with_residual_matches_numpy(
    case: tuple, tf32_on: bool, pipelined: bool, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """fp32 to 1e-4; TF32 to fp32 accuracy of the reference on TF32-rounded operands."""
    from deepc.ops.interpreter import run_graph
    from deepc.schedule import gpu_gemm_match
    from tests.backends.cuda.omp_blocks import run_blocks

    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", pipelined)
    ic, oc, stride, hw = case
    graph = _pointwise(np.random.default_rng(oc), ic, oc, stride, hw)
    x = np.random.default_rng(1).standard_normal((2, ic, *hw)).astype(np.float32)
    got, records = run_blocks(graph, _small_gpu(), {"x": x}, tmp_path, allow_tf32=tf32_on)
    assert "gemm" in _notes(records) and ("cp.async" in _notes(records)) == pipelined
    if not tf32_on:
        want = run_graph(graph, {"x": x})["y"]
        np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4)
        return
    rounded = _pointwise(np.random.default_rng(oc), ic, oc, stride, hw, True)
    exact = run_graph(rounded, {"x": tf32(x)})["y"]
    np.testing.assert_allclose(got["y"], exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())

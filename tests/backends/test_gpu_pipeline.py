"""The cp.async pipeline of the tiled GEMM (schedule/gpu_gemm_pipeline.py): rings of 2-4 shared
slots run on the CPU (tests/backends/cuda/omp_blocks.py defers each copy to its wait_group)
against numpy, the knob rules, the default depth, and the dialects without cp.async."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import async_copy, render_cuda
from deepc.errors import ScheduleError
from deepc.lowering.kernels import graph_kernels
from deepc.schedule.gpu import default_gemm_knobs
from tests.backends.test_gpu_gemm import (  # noqa: F401 (rings_by_default: autouse fixture)
    _conv_graph,
    _graph,
    _notes,
    _small_gpu,
    product,
    rings_by_default,
)

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ runs the CUDA C here")


def _with_stages(graph: Any, target: Any, tf32: bool, stages: int,
                 tile: dict[str, Any] | None = None) -> dict[str, dict]:
    """Each kernel's default tile knobs with `stages` slots (and the knobs in `tile`)."""
    out = {}
    for k in graph_kernels(graph):
        knobs = default_gemm_knobs(k.func, target, tf32, async_copy(target, CUDA))
        if knobs:
            out[k.name] = {n: ({"stages": stages} | (tile or {})).get(n.rpartition(".")[2], x)
                           for n, x in knobs.items()}
    return out


def _matmul(rng: np.random.Generator, m: int, k: int, n: int) -> tuple[Any, np.ndarray]:
    from onnx import helper

    w = rng.standard_normal((k, n)).astype(np.float32)
    return _graph([helper.make_node("MatMul", ["x", "w"], ["y"])], (m, k), {"w": w}), w


@needs_gxx
@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("oc,ic", [(56, 16), (64, 32)])
def test_pipelined_conv_matches_numpy(oc: int, ic: int, tf32: bool, stages: int,
                                      tmp_path) -> None:  # type: ignore[no-untyped-def]
    """3x3 convs through rings of 2-4 slots: 56 channels (a partial tile of columns), K = 144
    (a partial last k-step, zero-filled) and 288, 288 rows (a partial tile of rows)."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(oc + stages)
    graph = _conv_graph(rng, oc, ic=ic)
    x = rng.standard_normal((2, ic, 12, 12)).astype(np.float32)
    target = _small_gpu()
    got, records = run_blocks(graph, target, {"x": x}, tmp_path, allow_tf32=tf32,
                              knobs=_with_stages(graph, target, tf32, stages))
    assert f"{stages}-stage cp.async" in _notes(records)
    want = run_graph(graph, {"x": x})["y"]
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], want, rtol=tol, atol=tol)


@needs_gxx
@pytest.mark.parametrize("stages", [2, 3, 4])
@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("m,k,note", [(200, 72, "gemm"), (100, 600, "split-k 2x304"),
                                      (130, 20, "gemm")])
def test_pipelined_matmul_matches_numpy(m: int, k: int, note: str, tf32: bool, stages: int,
                                        tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Rows past M in the last tile; a split-K whose last chunk ends in a partial k-step; and
    K = 20 in k-steps of 8, fewer than some rings' slots (the prologue's copies past K are
    skipped; the default would not tile so short a product)."""
    from tests.backends.cuda.omp_blocks import run_blocks

    rng = np.random.default_rng(k + stages)
    graph, w = _matmul(rng, m, k, 64)
    x = rng.standard_normal((m, k)).astype(np.float32)
    target = _small_gpu(2)
    got, records = run_blocks(graph, target, {"x": x}, tmp_path, allow_tf32=tf32,
                              knobs=_with_stages(graph, target, tf32, stages, {
                                  "tiled": True, "mma": tf32, "bk": 8} if k == 20 else None))
    assert note in _notes(records) and f"{stages}-stage" in _notes(records)
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], x @ w, rtol=tol, atol=tol)


@needs_gxx
def test_a_slot_read_before_its_copies_land_is_caught(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The emulator is strict enough to fail a ring that waits too little: with wait_group(2)
    in a 3-slot ring a step reads its slot before its copies land."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import build_blocks
    from tests.backends.cuda.simulate import execute

    rng = np.random.default_rng(7)
    graph = _conv_graph(rng, 64, ic=32)
    x = rng.standard_normal((2, 32, 12, 12)).astype(np.float32)
    target = _small_gpu()
    kernels = graph_kernels(graph)
    source, launches, scratch, _ = render_cuda(kernels, target,
                                               knobs=_with_stages(graph, target, False, 3))
    assert "deepc_cp_async_wait<1>()" in source
    want = run_graph(graph, {"x": x})["y"]
    for wait, right in ((1, True), (2, False)):
        (tmp_path / str(wait)).mkdir()
        lib = build_blocks(source.replace("deepc_cp_async_wait<1>()",
                                          f"deepc_cp_async_wait<{wait}>()"),
                           kernels, (launches, scratch), tmp_path / str(wait))
        got = execute(lib, graph, kernels, (launches, scratch), {"x": x}, np.nan)["y"]
        assert np.allclose(got, want, rtol=1e-4, atol=1e-4) == right


def test_pipelined_kernels_take_dynamic_shared_memory() -> None:
    """A ring's slots are carved from the launch's dynamic shared memory, whose bytes the
    launch carries (the runtime raises the kernel's limit to them)."""
    rng = np.random.default_rng(0)
    graph = _conv_graph(rng, 64)
    target = _small_gpu()
    source, launches, _, _ = render_cuda(graph_kernels(graph), target, allow_tf32=True)
    assert CUDA.dynamic_shared in source and "__shared__ float g_As" not in source
    shared = [lc.shared for ls in launches.values() for lc in ls if "gemm" in lc.note]
    assert shared and all(s > 0 for s in shared)
    assert all(lc.to_dict().get("shared") == lc.shared
               for ls in launches.values() for lc in ls if lc.shared)
    flat, _, _, _ = render_cuda(graph_kernels(graph), _small_gpu(pipelined=False),
                                allow_tf32=True)
    assert "__shared__ float g_As" in flat and "cp_async" not in flat


def test_dialects_without_cp_async_keep_one_stage() -> None:
    """OpenCL and Metal spell no cp.async: on an sm_90 target their tiles still fetch
    through registers, and a knob asking for stages is refused."""
    from deepc.backends.metal.dialect import METAL
    from deepc.backends.opencl.dialect import OPENCL

    rng = np.random.default_rng(0)
    graph = _conv_graph(rng, 64)
    target = _small_gpu()
    for dialect in (OPENCL, METAL):
        source, _, _, records = render_cuda(graph_kernels(graph), target, dialect)
        assert "gemm" in _notes(records) and "cp.async" not in _notes(records)
        assert "cp_async" not in source
        with pytest.raises(ScheduleError, match=r"cp\.async"):
            render_cuda(graph_kernels(graph), target, dialect,
                        knobs=_with_stages(graph, target, False, 2))


def test_stage_knobs_are_checked_against_the_target() -> None:
    from deepc.schedule.gpu_gemm_knobs import tile_from_knobs, tile_knobs

    class Parts:
        m, n, k = 25088, 128, 1152

    target = _small_gpu()
    base = {"bm": 128, "bn": 128, "bk": 32, "mma": True, "warps_m": 2, "warps_n": 4}
    tile = tile_from_knobs(Parts(), target, True, base | {"stages": 4}, True)  # type: ignore[arg-type]
    assert tile is not None and tile.stages == 4 and tile.threads == 256
    assert tile_knobs(tile)["stages"] == 4
    # 128x128x32 is 37 KiB a stage: four (152 KiB) fit only the dynamic pool. Fetched
    # through registers, its next step's 32 floats a thread leave too few registers for
    # two blocks an SM; copied by cp.async they fit
    with pytest.raises(ScheduleError, match="registers"):
        tile_from_knobs(Parts(), target, True, base | {"min_blocks": 2}, True)  # type: ignore[arg-type]
    assert tile_from_knobs(Parts(), target, True, base | {"min_blocks": 1}, True)  # type: ignore[arg-type]
    assert tile_from_knobs(Parts(), target, True, base | {"min_blocks": 2, "stages": 3},  # type: ignore[arg-type]
                           True)
    small = replace(target, gpu=replace(target.gpu, shared_mem_per_block_kib=100))
    with pytest.raises(ScheduleError, match="shared memory"):
        tile_from_knobs(Parts(), small, True, base | {"stages": 3}, True)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match=r"cp\.async"):
        tile_from_knobs(Parts(), target, True, base | {"stages": 2}, False)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="stages=5"):
        tile_from_knobs(Parts(), target, True, base | {"stages": 5}, True)  # type: ignore[arg-type]


def test_ring_depth_keeps_the_blocks_per_sm(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The deepest ring whose shared memory still lets an SM hold the tile's blocks: on an
    H100 (228 KiB an SM) 64x64x16 TF32 tiles (4 blocks) take 4 slots, 128x64x32 ones (3
    blocks) 2; with less shared memory per SM, fewer. The default takes it only with
    RING_BY_DEFAULT (off until timed on a GPU)."""
    from deepc.schedule import gpu_gemm_match
    from deepc.schedule.gpu_gemm_match import choose_tile

    target = _small_gpu(132)
    shapes = ((25088, 128, 1152), (1568, 512, 256))
    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", False)
    assert all(t is None or t.stages == 1  # type: ignore[arg-type]
               for t in (choose_tile(product(*s), target, True, True) for s in shapes))
    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", True)
    got = {s: (t.bm, t.bn, t.stages) for s in shapes
           if (t := choose_tile(product(*s), target, True, True)) is not None}  # type: ignore[arg-type]
    assert got == {(25088, 128, 1152): (128, 64, 2), (1568, 512, 256): (64, 64, 4)}
    lean = replace(target, gpu=replace(target.gpu, shared_mem_per_sm_kib=100))
    tile = choose_tile(product(1568, 512, 256), lean, True, True)  # type: ignore[arg-type]
    assert tile is not None and tile.stages == 2
    tile = choose_tile(product(1568, 512, 256), target, True, False)  # type: ignore[arg-type]
    assert tile is not None and tile.stages == 1


def test_cp_async_is_read_from_the_target_file() -> None:
    """sm_80 and sm_90 declare cp.async; the shared base (Volta's figures) and the OpenCL GPU
    do not, so their tiles keep one stage whatever the arch string says."""
    from deepc.target import load_target

    assert load_target("cuda-sm80").async_copy == ("cp.async",)
    assert load_target("cuda-sm90").async_copy == ("cp.async",)
    assert load_target("opencl-gpu").async_copy == ()
    assert not async_copy(_small_gpu(pipelined=False), CUDA)
    assert async_copy(_small_gpu(), CUDA)


@needs_gxx
@pytest.mark.parametrize("tf32", [False, True])
def test_operands_that_are_no_single_load_are_stored_into_the_ring(
        tf32: bool, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An operand that is an expression (a fused prologue, an index no affine form holds) is
    computed by the thread and stored into the slot being filled, beside the cp.asyncs:
    here every operand is treated so."""
    from deepc.ops.interpreter import run_graph
    from deepc.schedule import gpu_gemm
    from tests.backends.cuda.omp_blocks import run_blocks

    monkeypatch.setattr(gpu_gemm, "direct", lambda *_: None)
    rng = np.random.default_rng(3)
    graph = _conv_graph(rng, 56, ic=16)
    x = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    target = _small_gpu()
    source, _, _, records = render_cuda(graph_kernels(graph), target, allow_tf32=tf32,
                                        knobs=_with_stages(graph, target, tf32, 3))
    assert "3-stage cp.async" in _notes(records)
    assert "deepc_cp_async4(&" not in source and "deepc_cp_async16(&" not in source
    got, _ = run_blocks(graph, target, {"x": x}, tmp_path, allow_tf32=tf32,
                        knobs=_with_stages(graph, target, tf32, 3))
    tol = 2e-2 if tf32 else 1e-4
    np.testing.assert_allclose(got["y"], run_graph(graph, {"x": x})["y"], rtol=tol, atol=tol)

"""The GPU tuning space without a GPU: default tiles replay from their knobs, the target's
limits reject what cannot launch, candidates render and (through the OpenMP block emulator)
compute the default's numbers, and the tuner logs, checks and applies GPU candidates."""

from __future__ import annotations

import pickle
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from deepc.backends.base import CompileOptions
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import render_cuda
from deepc.errors import ScheduleError
from deepc.lowering.kernels import graph_kernels
from deepc.target import load_target
from deepc.tune.gpu_tasks import GpuTask, extract_gpu_tasks
from deepc.tune.log import TuneLog, best_knobs
from deepc.tune.measure import Measurement
from deepc.tune.measure_cuda import CudaMeasurer, time_stages
from deepc.tune.space import sample
from deepc.tune.tuner import tune


def _conv_graph(rng: np.random.Generator, oc: int = 64, ic: int = 16) -> Any:
    from onnx import helper

    from deepc.frontends.onnx import convert

    w = rng.standard_normal((oc, ic, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    proto = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, [2, ic, 12, 12])],
        [helper.make_tensor_value_info("y", 1, None)],
        initializer=[helper.make_tensor("w", 1, w.shape, w.ravel())])
    return convert(helper.make_model(proto, opset_imports=[helper.make_opsetid("", 17)]))


def _small_gpu(sms: int = 1) -> Any:
    """sm90 with few SMs: test-sized products fill it, so they are tiled."""
    target = load_target("cuda-sm90")
    return replace(target, gpu=replace(target.gpu, sm_count=sms))


def _task(tf32: bool, sms: int = 1) -> tuple[Any, GpuTask]:
    graph = _conv_graph(np.random.default_rng(0))
    tasks = extract_gpu_tasks(graph_kernels(graph), _small_gpu(sms), CUDA, tf32)
    assert len(tasks) == 1
    return graph, tasks[0]


def _valid(task: GpuTask, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n distinct candidates the target's rules accept, other than the default."""
    rng, out = random.Random(seed), {}
    default = dict(task.default.knobs)
    for _ in range(2000):
        k = sample(default, task.axes(), rng)
        if task.fits(k) and task.canonical(k) != default:
            out[str(sorted(task.canonical(k).items()))] = task.canonical(k)
        if len(out) == n:
            break
    return list(out.values())


@pytest.mark.parametrize("tf32", [False, True])
def test_default_knobs_replay_to_the_default_source(tf32: bool) -> None:
    graph, task = _task(tf32)
    kernels = graph_kernels(graph)
    plain = render_cuda(kernels, task.target, allow_tf32=tf32)[0]
    replayed = render_cuda(kernels, task.target, allow_tf32=tf32,
                           knobs={task.kernel: dict(task.default.knobs)})[0]
    assert replayed == plain
    assert any(k.endswith("bm") for k in task.default.knobs)


def test_limits_of_the_target_reject_candidates() -> None:
    _, task = _task(False)
    p = task.main
    base = dict(task.default.knobs)
    cases = {
        "shared memory": {f"{p}bm": 256, f"{p}bn": 128, f"{p}bk": 32, f"{p}threads": 256,
                          f"{p}stages": 1},  # 49 KiB static (pipelined, a dynamic pool)
        "threads": {f"{p}threads": 2048},
        "registers": {f"{p}bm": 256, f"{p}bn": 128, f"{p}bk": 8, f"{p}threads": 256,
                      f"{p}tx": 16, f"{p}min_blocks": 2},
        "TF32": {f"{p}mma": True},
    }
    for why, change in cases.items():
        with pytest.raises(ScheduleError, match=why.split()[0]):
            task.canonical({**base, **change})
        assert not task.fits({**base, **change})
    with pytest.raises(ScheduleError, match="knob"):
        task.stages({**base, "s9.bm": 32})


def test_candidates_render_other_tiles() -> None:
    _, task = _task(False)
    default_grid = [s.grid for s in task.stages(dict(task.default.knobs))[0]]
    grids = {str([s.grid for s in task.stages(k)[0]]) for k in _valid(task, 6)}
    assert grids - {str(default_grid)}  # at least one candidate launches another grid


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ runs the CUDA C here")


@needs_gxx
@pytest.mark.parametrize("tf32", [False, True])
def test_candidates_compute_the_defaults_numbers(tf32: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sampled valid candidates (tiles, warps, split-K) run through the OpenMP block emulator
    and agree with the numpy reference, as the measurer's check against the default asks."""
    from deepc.ops.interpreter import run_graph
    from tests.backends.cuda.omp_blocks import run_blocks

    graph, task = _task(tf32, sms=2)
    x = np.random.default_rng(1).standard_normal((2, 16, 12, 12)).astype(np.float32)
    want = run_graph(graph, {"x": x})["y"]
    tol = 1e-2 if tf32 else 1e-4
    for n, knobs in enumerate(_valid(task, 3, seed=3)):
        out = tmp_path / str(n)
        out.mkdir()
        got, records = run_blocks(graph, task.target, {"x": x}, out, allow_tf32=tf32,
                                  knobs={task.kernel: knobs})
        bm = knobs[f"{task.main}bm"]
        assert f"'bm': {bm}" in str(records) or not knobs[f"{task.main}tiled"]
        np.testing.assert_allclose(got["y"], want, rtol=tol, atol=tol, err_msg=str(knobs))


def test_measurer_job_names_every_launch_and_buffer() -> None:
    """What the worker gets: CUDA source with each launch's function, the kernel's buffers
    then its scratch (a split-K's partial sums), all built from the candidate's knobs."""
    _, task = _task(False, sms=2)
    split = next((k for k in _valid(task, 40) if k[f"{task.main}split"] > 1), None)
    assert split is not None
    fn, args = CudaMeasurer(task.target).job(task, split, [])
    pickle.dumps((fn, args))  # what goes to the spawned worker
    source, _, launches, buffers, outputs, _ = args
    # tile, sum: the padding is read in place by the tiled conv (no copy launch)
    assert fn is time_stages and len(launches) == 2
    names = {b[0] for b in buffers}
    assert outputs == len(task.lowered.func.params) and any("partial" in n for n in names)
    for func, _, _, params, _ in launches:
        assert f"void {func}(" in source and set(params) <= names
    # a pipelined tile's launch carries its dynamic shared memory
    assert any(lc[4] > 0 for lc in launches) == (split[f"{task.main}stages"] > 1)


class _FakeGpu:
    """A measurer standing in for the GPU: cost falls with bm, a candidate with bk = 32
    gives wrong outputs (so it must be logged as an error and never applied)."""

    def __init__(self) -> None:
        self.calls = 0

    def measure(self, task: GpuTask, knobs: dict[str, Any], steps: list) -> Measurement:
        self.calls += 1
        task.stages(knobs)  # what the real one renders
        p = task.main
        cost = 1.0 / knobs[f"{p}bm"] + 0.001 * knobs[f"{p}split"]
        wrong = knobs[f"{p}bk"] == 32 and knobs != dict(task.default.knobs)
        return Measurement(cost, None, [np.full(4, 2.0 if wrong else 1.0, np.float32)])

    def close(self) -> None:
        pass


def test_tuner_searches_gpu_tasks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    graph, task = _task(False)
    log = tmp_path / "gpu.jsonl"
    gpu = _FakeGpu()
    summary = tune([task], gpu, TuneLog(log, task.target.fingerprint()), budget_s=3)
    lines = log.read_text().splitlines()
    assert summary.trials == len(lines) >= gpu.calls > 3  # no spelling measured twice
    best = best_knobs(log, task.target)
    assert best and best[task.key][f"{task.main}bk"] != 32
    assert best[task.key][f"{task.main}bm"] >= task.default.knobs[f"{task.main}bm"]
    # the GPU backend schedules that workload with the knobs (no nvcc needed to schedule)
    from deepc.backends.cuda.backend import CudaBackend

    scheduled = CudaBackend().schedule(graph_kernels(graph), task.target,
                                       CompileOptions(tuned=best))
    assert [s.tuned for s in scheduled] == [True, False]  # the conv; the relu has no knobs
    stages = scheduled[0].state[0]
    assert any(f"'bm': {best[task.key][f'{task.main}bm']}" in str(s.knobs) for s in stages)


def test_nothing_imports_pycuda_at_import_time() -> None:
    code = ("import sys, deepc.cli, deepc.compiler.tuning, deepc.tune.measure_cuda;"
            " sys.exit('pycuda' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""The GPU kernel primitives (tile_gemm, split_k_sum, warp_reduce): their schedules are data
that replays, their loop IR verifies and prints, and the verifier rejects broken kernels."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.errors import VerifyError
from deepc.ir.expr import Const, Var
from deepc.ir.loop import LetStmt
from deepc.ir.loop_text import func_to_text
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import graph_kernels
from deepc.schedule import Schedule
from deepc.schedule.gpu import gpu_stages
from deepc.target import load_target
from tests.backends.test_gpu_gemm import _conv_graph, _small_gpu


def _stages(graph, target, tf32: bool):  # type: ignore[no-untyped-def]
    return [s for k in graph_kernels(graph) for s in gpu_stages(k.func, target, True, tf32)[0]]


@pytest.mark.parametrize(("sms", "tf32", "primitives"), [
    (1, False, {"tile_gemm"}), (1, True, {"tile_gemm"}),
    (8, True, {"tile_gemm", "split_k_sum"})])
def test_schedules_replay_to_the_launched_kernels(sms: int, tf32: bool,
                                                  primitives: set[str]) -> None:
    graph = _conv_graph(np.random.default_rng(0), 64)
    seen = set()
    for stage in _stages(graph, _small_gpu(sms), tf32):
        assert stage.base is not None
        replayed = Schedule.from_list(stage.schedule.to_list()).apply(stage.base)
        assert func_to_text(replayed) == func_to_text(stage.func)
        verify_func(stage.func)
        for step in stage.schedule.steps:
            seen.add(step.primitive)
            if step.primitive == "tile_gemm":
                assert dict(step.kwargs) == stage.knobs
                assert stage.knobs["mma_tf32"] == tf32
                text = func_to_text(stage.func)
                assert "launch_bounds" in text and "barrier()" in text
                assert ("mma_m16n8k8_tf32(" in text) == tf32 and ("@fma(" in text) != tf32
    assert primitives <= seen


def test_warp_reduce_is_a_replayable_step() -> None:
    from onnx import helper

    from tests.backends.test_gpu_gemm import _graph

    graph = _graph([helper.make_node("GlobalAveragePool", ["x"], ["y"])], (2, 8, 15, 15), {})
    (stage,) = _stages(graph, load_target("cuda-sm90"), False)
    assert stage.knobs == {"warps": 8, "lanes": 32} and stage.block == (256, 1, 1)
    assert stage.base is not None
    assert Schedule.from_list(stage.schedule.to_list()).apply(stage.base) == stage.func
    assert "@shfl_xor(" in func_to_text(stage.func)


def test_block_threads_is_a_replayable_step() -> None:
    """A recurrent cell has no outer parallel loop: one block walks it, and that is a step
    with named knobs like any other."""
    from onnx import helper

    from tests.backends.test_gpu_gemm import _graph

    rng = np.random.default_rng(0)
    hidden, inputs = 8, 4
    weights = {"W": rng.standard_normal((1, 4 * hidden, inputs)).astype(np.float32),
               "R": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32)}
    node = helper.make_node("LSTM", ["x", "W", "R"], ["", "y"], hidden_size=hidden)
    graph = _graph([node], (5, 1, inputs), weights)
    target = load_target("cuda-sm90")
    stages = [s for s in _stages(graph, target, False) if s.note.startswith("block(")]
    assert stages
    for stage in stages:
        (step,) = stage.schedule.steps
        assert step.primitive == "block_threads" and dict(step.kwargs) == stage.knobs
        assert stage.knobs["shared_budget"] == target.shared_mem_static_kib * 1024
        assert stage.block == (stage.knobs["threads"], 1, 1) and stage.grid == (1, 1, 1)
        assert stage.base is not None
        assert Schedule.from_list(stage.schedule.to_list()).apply(stage.base) == stage.func


def test_verifier_rejects_a_let_shadowing_its_scope() -> None:
    graph = _conv_graph(np.random.default_rng(0), 64)
    stage = next(s for s in _stages(graph, _small_gpu(), False) if s.knobs)
    tid = Var("g_tid")
    bad = stage.func.with_body(LetStmt(tid, Const(0, "int64"), stage.func.body))
    with pytest.raises(VerifyError, match="shadows"):
        verify_func(bad)

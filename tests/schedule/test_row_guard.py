"""Register tiles whose rows do not divide the row loop (schedule/row_guard.py): the rows are
tested once per tile, never inside the reduction, and the numbers stay the same."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.loop import For, IfThenElse, walk_stmts
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.helpers import node_model
from tests.schedule.test_cpu_gemm import TOL, _kernel_func, compile_run, rand

AVX512 = CpuMachine(512, 24, 2, 32, 1024)
AVX2 = CpuMachine(256, 12, 2, 32, 512)


def _guarded_updates(loop: For) -> bool:
    return any(isinstance(s, IfThenElse) for s in walk_stmts(loop.body))


@pytest.mark.parametrize("machine", [AVX512, AVX2])
def test_full_tiles_reduce_without_tests(machine: CpuMachine) -> None:
    """ViT's 197 tokens @ 192x576: the full row tiles' reduction loop holds no guard; one
    version of it (the edge tile's) keeps them."""
    func = _kernel_func((1, 197, 192), (192, 576))
    sch = default_schedule(func, machine)
    assert 197 % sch.knobs["rows"]
    assert any(s.primitive == "version_rows" for s in sch.steps)
    k_loops = [s for s in walk_stmts(sch.apply(func).body)
               if isinstance(s, For) and s.var.name == "matmul_k"]
    assert sorted(_guarded_updates(k) for k in k_loops) == [False, True]


def test_rows_that_divide_are_left_alone() -> None:
    sch = default_schedule(_kernel_func((1, 192, 192), (192, 576)), AVX512)
    assert not any(s.primitive == "version_rows" for s in sch.steps)


@pytest.mark.parametrize(("a", "b"), [
    ((1, 197, 192), (192, 576)),  # ViT's qkv projection
    ((2, 37, 24), (24, 64)),      # a prime number of rows, batched
])
def test_versioned_rows_compute_the_product(a, b, tmp_path) -> None:
    x, w = rand(*a), rand(*b)
    model = node_model("MatMul", {"a": x, "b": w})
    out, _ = compile_run(model, {"a": x, "b": w}, tmp_path, 1)
    np.testing.assert_allclose(out, np.matmul(x.astype(np.float64), w), **TOL)

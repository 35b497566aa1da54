"""Register tiles whose rows do not divide the row loop (schedule/row_guard.py): the rows are
tested once per tile, never inside the reduction, and the numbers stay the same."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.loop import For, IfThenElse, walk_stmts
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder
from deepc.schedule import Schedule
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.helpers import node_model
from tests.schedule.test_cpu_gemm import TOL, _kernel_func, compile_run, rand
from tests.schedule.test_primitives import run

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



def test_the_version_sits_below_loops_that_later_steps_fuse() -> None:
    """Rows of a tile with another loop between them and the row loop (MobileNetV3's 1x1
    convs: channel blocks as rows, pixels between): that loop still fuses with the rows'
    outer loop afterwards, and the numbers stay the same."""
    a = placeholder((10, 3), "float32", "A")
    d = compute((10, 3), lambda i, j: a[i, j] * 2.0, "D")
    f = lower([a], [d], "ew")
    sch = Schedule()
    sch.add("split", "D_i0", 4).add("reorder", "D_i1", "D_i0_i")
    sch.add("version_rows", "D_i0_o", "D_i0_i").add("fuse", "D_i0_o", "D_i1")
    g = sch.apply(f)
    assert any(isinstance(s, IfThenElse) and s.otherwise is not None
               for s in walk_stmts(g.body))
    x = rand(10, 3)
    np.testing.assert_array_equal(run(g, x, out_shape=(10, 3)), x * 2.0)

"""Row reductions along the contiguous axis (softmax, LayerNorm over the last axis): partial
vector accumulators across the reduction loop (rfactor) instead of gathers across rows."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.loop import ForKind, walk_stmts
from tests.helpers import node_model
from tests.schedule.test_cpu_gemm import compile_run

rng = np.random.default_rng(3)


def kinds(records: list) -> set[str]:
    return {v for r in records for k, v in r.knobs.items() if k.endswith("kind")}


@pytest.mark.parametrize("width", [196, 64, 37])  # a tail, none, a prime
def test_softmax_rows_reduce_as_vectors(width: int, tmp_path) -> None:
    x = (rng.standard_normal((3, 5, width)) * 4).astype(np.float32)
    x[1, 2, width // 2] = 60.0  # the max must come from the middle of a row
    out, records = compile_run(node_model("Softmax", {"x": x}, axis=-1), {"x": x}, tmp_path)
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert "row_reduction" in kinds(records)


def test_nan_in_a_row_propagates(tmp_path) -> None:
    x = rng.standard_normal((2, 100)).astype(np.float32)
    x[0, 70] = np.nan
    out, _ = compile_run(node_model("ReduceMax", {"x": x}, axes=[1], keepdims=0), {"x": x},
                         tmp_path)
    assert np.isnan(out[0]) and out[1] == x[1].max()


def test_rfactor_splits_the_loop_and_combines_by_halves() -> None:
    from deepc.ir.expr import INDEX, Const, Load, Var, binary
    from deepc.ir.loop import Allocate, Buffer, For, PrimFunc, Seq, Store
    from deepc.schedule.reduction import rfactor

    x, y = Buffer("x", (4, 50), "float32"), Buffer("y", (4,), "float32")
    acc = Buffer("acc", (1,), "float32", "local")
    i, r, zero = Var("i", INDEX), Var("r", INDEX), Const(0, INDEX)
    body = Allocate(acc, Seq((
        Store(acc, (zero,), Const(0.0, "float32")),
        For(r, 50, ForKind.SERIAL,
            Store(acc, (zero,), binary("add", Load(acc, (zero,)), Load(x, (i, r))))),
        Store(y, (i,), Load(acc, (zero,))))))
    f = rfactor(PrimFunc("k", (x, y), For(i, 4, ForKind.SERIAL, body)), "r", 16)
    loops = [s for s in walk_stmts(f.body) if isinstance(s, For)]
    # 3 vector steps of 16, a tail of 2, halving 16 -> 8 -> 4 -> 2 -> 1
    assert [(lp.extent, lp.kind) for lp in loops if lp.kind is ForKind.VECTORIZED] == [
        (16, ForKind.VECTORIZED), (16, ForKind.VECTORIZED), (8, ForKind.VECTORIZED),
        (4, ForKind.VECTORIZED), (2, ForKind.VECTORIZED)]
    assert any(lp.extent == 2 and lp.var.name == "r_t" for lp in loops)
    with pytest.raises(ValueError, match="rfactor"):
        rfactor(PrimFunc("k", (x, y), For(i, 4, ForKind.SERIAL, body)), "i", 16)


def test_a_recorded_width_replays() -> None:
    from deepc.errors import ScheduleError
    from deepc.ir.expr import INDEX, Const, Load, Var, binary
    from deepc.ir.loop import Allocate, Buffer, For, Seq, Store
    from deepc.schedule.cpu import perfect_chain
    from deepc.schedule.cpu_machine import CpuMachine
    from deepc.schedule.cpu_reduction import plan_row_reduction

    x, y = Buffer("x", (4, 64), "float32"), Buffer("y", (4,), "float32")
    acc = Buffer("acc", (1,), "float32", "local")
    i, r, zero = Var("i", INDEX), Var("r", INDEX), Const(0, INDEX)
    nest = For(i, 4, ForKind.SERIAL, Allocate(acc, Seq((
        Store(acc, (zero,), Const(0.0, "float32")),
        For(r, 64, ForKind.SERIAL,
            Store(acc, (zero,), binary("add", Load(acc, (zero,)), Load(x, (i, r))))),
        Store(y, (i,), Load(acc, (zero,)))))))
    chain = perfect_chain(nest)
    machine = CpuMachine(512, 32, 1, 32, 1024)  # 16 float lanes
    assert plan_row_reduction(chain, machine).knobs == {"vector": 32}
    assert plan_row_reduction(chain, machine, 16).steps == [("rfactor", "r", 16)]
    with pytest.raises(ScheduleError, match="vector=128"):
        plan_row_reduction(chain, machine, 128)

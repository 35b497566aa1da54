"""The FPGA default schedule: BRAM tiles of reused weights, unrolled tiles within the budget,
pipelined loops at II=1 where a running sum is interleaved over partial sums, the interval of
the recurrence where it is not — and the numbers unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.loop import Allocate, ForKind, PrimFunc, loops, walk_stmts
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder, reduce_axis, rmax, rsum
from deepc.schedule.fpga import FADD_CYCLES, fpga_schedule
from deepc.schedule.interleave import interleave
from tests.schedule.test_primitives import run


def _rows(k_extent: int) -> PrimFunc:  # C[i, j] = sum_k W[i, k] X[j, k]
    w = placeholder((6, k_extent), "float32", "W")
    x = placeholder((5, k_extent), "float32", "X")
    k = reduce_axis(k_extent, "k")
    c = compute((6, 5), lambda i, j: rsum(w[i, k] * x[j, k], k), "C")
    return lower([w, x], [c], "rows")


def _allocated(g: PrimFunc) -> list[str]:
    return [s.buffer.name for s in walk_stmts(g.body) if isinstance(s, Allocate)]


def _check_rows(g: PrimFunc, k_extent: int) -> None:
    rng = np.random.default_rng(k_extent)
    a = rng.standard_normal((6, k_extent), np.float32)
    b = rng.standard_normal((5, k_extent), np.float32)
    np.testing.assert_allclose(run(g, a, b, out_shape=(6, 5)), a @ b.T, rtol=1e-5, atol=1e-5)


def test_weight_rows_tiled_reduction_unrolled_and_interleaved() -> None:
    # W's row i is reused by every j, so it gets a tile; the 4 pipelined steps of k add into
    # 4 partial sums, so the loop starts one every cycle
    f = _rows(32)
    sch = fpga_schedule(f, unroll=8, tile_limit=64)
    g = sch.apply(f)
    kinds = {x.var.name: x.kind for x in loops(g.body)}
    assert kinds["k_i"] is ForKind.UNROLLED and kinds["k_o"] is ForKind.PIPELINED
    assert ("interleave", ("k_o", FADD_CYCLES)) in [(s.primitive, s.args) for s in sch.steps]
    assert g.attrs["pipeline_ii"]["k_o"] == 1
    assert g.attrs["partition"] == {"W_bram": 8}
    assert fpga_schedule(f, unroll=8, tile_limit=16).steps[0].primitive != "cache_read"
    _check_rows(g, 32)


def test_short_sums_keep_the_adder_interval_and_fixed_point_adds_reach_one() -> None:
    # 2 pipelined steps: adding 4 partial sums up would cost more than the 3 cycles saved
    f = _rows(16)
    g = fpga_schedule(f, unroll=8).apply(f)
    assert g.attrs["pipeline_ii"]["k_o"] == FADD_CYCLES
    assert not any("lanes" in b for b in _allocated(g))
    _check_rows(g, 16)
    one = fpga_schedule(f, unroll=8, add_cycles=1).apply(f)  # fixed16's one-cycle adder
    assert one.attrs["pipeline_ii"]["k_o"] == 1 and not any("lanes" in b for b in _allocated(one))


def test_interleave_keeps_the_sum_and_a_max_recurrence_pipelines_at_one() -> None:
    f = _rows(37)  # a prime count: the lanes see unequal shares
    g = interleave(f, "k", 4)
    assert any(b.endswith("_lanes") for b in _allocated(g))
    _check_rows(g, 37)
    x = placeholder((4, 64), "float32", "X")
    r = reduce_axis(64, "r")
    m = lower([x], [compute((4,), lambda i: rmax(x[i, r], r), "M")], "rowmax")
    h = fpga_schedule(m, unroll=8).apply(m)
    assert set(h.attrs["pipeline_ii"].values()) == {1}  # a comparison per step, no lanes
    with pytest.raises(ValueError):
        interleave(m, "r", 4)  # only sums are split into partial sums
    a = np.random.default_rng(3).standard_normal((4, 64), np.float32)
    np.testing.assert_array_equal(run(h, a, out_shape=(4,)), a.max(axis=1))


def test_a_reduction_within_the_tile_unrolls_into_a_pipeline_over_outputs() -> None:
    # 4 window elements per output fit the tile of 8: one output a cycle, r unrolled, the
    # rows and outputs fused into that pipeline (each output's running max is its own)
    x = placeholder((3, 5, 4), "float32", "X")
    r = reduce_axis(4, "r")
    m = lower([x], [compute((3, 5), lambda i, j: rmax(x[i, j, r], r), "M")], "windows")
    g = fpga_schedule(m, unroll=8).apply(m)
    kinds = {y.var.name: y.kind for y in loops(g.body)}
    assert kinds == {"M_i0_M_i1": ForKind.PIPELINED, "r": ForKind.UNROLLED}, kinds
    assert g.attrs["pipeline_ii"] == {"M_i0_M_i1": 1}
    a = np.random.default_rng(4).standard_normal((3, 5, 4), np.float32)
    np.testing.assert_array_equal(run(g, a, out_shape=(3, 5)), a.max(axis=2))

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


def _dot(k_extent: int) -> PrimFunc:  # one output: no tile of outputs to sum side by side
    x = placeholder((k_extent,), "float32", "X")
    y = placeholder((k_extent,), "float32", "Y")
    k = reduce_axis(k_extent, "k")
    return lower([x, y], [compute((1,), lambda i: rsum(x[k] * y[k], k), "D")], "dot")


def _check_dot(g: PrimFunc, k_extent: int) -> None:
    rng = np.random.default_rng(k_extent)
    a, b = (rng.standard_normal(k_extent, np.float32) for _ in range(2))
    np.testing.assert_allclose(run(g, a, b, out_shape=(1,)), [a @ b], rtol=1e-5, atol=1e-5)


def test_a_sum_is_unrolled_and_interleaved_over_the_adders_latency() -> None:
    # the 4 pipelined steps of k add into 4 partial sums, so the loop starts one every cycle
    f = _dot(32)
    sch = fpga_schedule(f, unroll=8)
    g = sch.apply(f)
    kinds = {x.var.name: x.kind for x in loops(g.body)}
    assert kinds["k_i"] is ForKind.UNROLLED and kinds["k_o"] is ForKind.PIPELINED
    assert ("interleave", ("k_o", FADD_CYCLES)) in [(s.primitive, s.args) for s in sch.steps]
    assert g.attrs["pipeline_ii"]["k_o"] == 1
    _check_dot(g, 32)


def test_short_sums_keep_the_adder_interval_and_fixed_point_adds_reach_one() -> None:
    # 2 pipelined steps: adding 4 partial sums up would cost more than the 3 cycles saved
    f = _dot(16)
    g = fpga_schedule(f, unroll=8).apply(f)
    assert g.attrs["pipeline_ii"]["k_o"] == FADD_CYCLES
    assert not any("lanes" in b for b in _allocated(g))
    _check_dot(g, 16)
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


def test_long_sums_run_with_their_outputs_side_by_side_in_one_pipeline() -> None:
    # C[o, y, x] = sum_k W[o, k] X[k, y, x], a 1x1 conv: 32 terms per output exceed the tile
    # of 8, so the sums move to an on-chip tile of the 4x16 outputs of a channel, 8 of a row
    # are summed side by side, and k, rows and output groups run as one pipeline at II=1 (an
    # element is next updated 4 x 2 iterations later)
    w, x = placeholder((2, 32), "float32", "W"), placeholder((32, 4, 16), "float32", "X")
    k = reduce_axis(32, "k")
    f = lower([w, x], [compute((2, 4, 16), lambda o, i, j: rsum(w[o, k] * x[k, i, j], k),
                               "C")], "conv1x1")
    sch = fpga_schedule(f, unroll=8, tile_limit=64)
    assert [s.primitive for s in sch.steps][:3] == ["cache_read", "partition", "reduce_outside"]
    g = sch.apply(f)
    assert g.attrs["partition"]["W_bram"] == 8  # W's row o, reused by every output, on chip
    assert any(b.endswith("_tile") for b in _allocated(g))
    piped = [y for y in loops(g.body) if y.kind is ForKind.PIPELINED]
    assert max(y.extent for y in piped) == 32 * 4 * 2
    assert set(g.attrs["pipeline_ii"].values()) == {1}
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 32), np.float32)
    b = rng.standard_normal((32, 4, 16), np.float32)
    np.testing.assert_allclose(run(g, a, b, out_shape=(2, 4, 16)),
                               np.einsum("ok,kij->oij", a, b), rtol=1e-5, atol=1e-5)

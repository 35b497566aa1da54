"""The FPGA default schedule: BRAM tiles of reused weights, unrolled tiles within the budget,
pipelined loops with the interval of their recurrence — and the numbers unchanged."""

from __future__ import annotations

import numpy as np

from deepc.ir.loop import ForKind, loops
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder, reduce_axis, rsum
from deepc.schedule.fpga import FADD_CYCLES, fpga_schedule
from tests.schedule.test_primitives import run


def test_weight_rows_tiled_reduction_unrolled_and_pipelined() -> None:
    # C[i, j] = sum_k W[i, k] X[j, k]: W's row i is reused by every j, so it gets a tile
    w, x = placeholder((6, 32), "float32", "W"), placeholder((5, 32), "float32", "X")
    k = reduce_axis(32, "k")
    c = compute((6, 5), lambda i, j: rsum(w[i, k] * x[j, k], k), "C")
    f = lower([w, x], [c], "rows")
    g = fpga_schedule(f, unroll=8, tile_limit=64).apply(f)
    kinds = {x.var.name: x.kind for x in loops(g.body)}
    assert kinds["k_i"] is ForKind.UNROLLED and kinds["k_o"] is ForKind.PIPELINED
    assert g.attrs["pipeline_ii"]["k_o"] == FADD_CYCLES
    assert g.attrs["partition"] == {"W_bram": 8}
    assert fpga_schedule(f, unroll=8, tile_limit=16).steps[0].primitive != "cache_read"
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 32), np.float32), rng.standard_normal((5, 32), np.float32)
    np.testing.assert_allclose(run(g, a, b, out_shape=(6, 5)), a @ b.T, rtol=1e-5, atol=1e-5)

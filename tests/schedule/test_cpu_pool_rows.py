"""Default CPU schedules of pools: no operand is shared between outputs, yet rows of
independent accumulators hide the latency of the combining op (max or add) that a single
accumulator's chain would wait on (over padding too: tiles inside the image drop their
guards). Numbers are checked against the
numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.expr import Select
from deepc.ir.loop import Allocate, IfThenElse, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array
from deepc.schedule.cpu_reduction import LATENCY_CHAINS
from tests.passes.support import Net
from tests.schedule.test_cpu_conv_widths import compile_one, run_one


@pytest.mark.parametrize(("op", "attrs"), [
    ("max_pool", {"kernel_shape": (3, 3), "strides": (2, 2)}),  # 55 -> 27 columns
    ("avg_pool", {"kernel_shape": (3, 3)}),
    ("global_avg_pool", {}),
])
def test_pools_keep_several_accumulators(op: str, attrs: dict) -> None:
    x = np.random.default_rng(0).standard_normal((1, 32, 9, 55)).astype(np.float32)
    n = Net(x=(1, 2, 9, 55, 16))
    graph = n.graph(n(op, "x", layout="NCHWc", **attrs))
    func, inputs = compile_one(graph, 512)
    acc = next(s.buffer for s in walk_stmts(func.body) if isinstance(s, Allocate))
    assert len(acc.shape) == 2 and acc.shape[1] == 16  # rows x lanes, not one row
    assert 2 <= acc.shape[0] <= LATENCY_CHAINS + LATENCY_CHAINS // 4
    feeds = {"x": block_array(x, 16)}
    want = run_graph(graph, feeds)[graph.outputs[0]]
    np.testing.assert_allclose(run_one(graph, func, inputs, feeds), want, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("rows", [None, 1, 4])
def test_a_pool_over_padding_tiles_rows_guarded_only_at_the_border(rows: int | None) -> None:
    """Its reads are guarded (a bounds test each, a branch per row of the tile): tiles
    inside the image run without the tests (version_interior), so rows pay there too
    (resnet18's 112 -> 56 max pool: 98 -> 63 us); the knob `rows` picks another height."""
    x = np.random.default_rng(1).standard_normal((1, 16, 9, 48)).astype(np.float32)
    n = Net(x=(1, 1, 9, 48, 16))
    graph = n.graph(n("max_pool", "x", layout="NCHWc", kernel_shape=(3, 3), strides=(2, 2),
                      pads=(1, 1, 1, 1)))
    func, inputs = compile_one(graph, 512, None if rows is None else {"rows": rows})
    acc = next(s.buffer for s in walk_stmts(func.body) if isinstance(s, Allocate))
    assert acc.shape == (rows or LATENCY_CHAINS, 16)
    # a tile inside the image reads bare, one at the border through the guards
    (version,) = [s for s in walk_stmts(func.body)
                  if isinstance(s, IfThenElse) and s.otherwise is not None]
    assert _selects(version.then) == 0 and _selects(version.otherwise) > 0
    feeds = {"x": block_array(x, 16)}
    want = run_graph(graph, feeds)[graph.outputs[0]]
    np.testing.assert_allclose(run_one(graph, func, inputs, feeds), want, rtol=1e-6)


def _selects(s: object) -> int:
    return sum(isinstance(e, Select) for x in walk_stmts(s) if isinstance(x, Store)  # type: ignore[arg-type]
               for e in walk(x.value))

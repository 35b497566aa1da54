"""Static memory planning: no live buffers overlap (checked by simulating the plan), in-place
updates and zero-copy aliases compute the same numbers, the arena is near its lower bound,
and the call order lowers the peak on branching graphs."""

from __future__ import annotations

import json
from math import prod
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import deepc
from deepc.frontends import load
from deepc.ir.graph import Graph
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.lowering.arena import Block, pack, peak_bytes
from deepc.lowering.inplace import inplace_pairs
from deepc.lowering.plan import Plan, value_bytes
from deepc.lowering.views import strided_shape
from tests.conftest import SHARED_MODELS, shared_model
from tests.passes.test_fuse import assert_compiled_matches, onnx_graph
from tests.test_cli import EXAMPLE, run


def simulate(graph: Graph, plan: Plan) -> None:
    """Run the plan on tags instead of numbers: each kernel call checks that every workspace
    value it reads still holds what was written for it, then tags what it writes. A concat's
    parts tag their slices with the concat, so reading it checks every part is still there."""
    regions: list[tuple[int, int, str]] = []  # (start, end, value whose data lies there)

    def owner(value: str) -> str:
        while value in plan.aliases or value in plan.views:
            value = plan.aliases[value] if value in plan.aliases else plan.views[value][0]
        return value

    def spans(value: str) -> list[tuple[int, int]]:
        """The bytes `value` occupies: one range, or a strided concat part's rows."""
        off, t = plan.locations[value].offset, graph.types[value]
        if value in plan.views:
            joined = graph.types[plan.views[value][0]]
            if strided_shape(t, joined) is not None:
                rows = strided_rows(t, joined)
                row, stride = t.nbytes // rows, joined.nbytes // rows
                return [(off + r * stride, off + r * stride + row) for r in range(rows)]
        return [(off, off + value_bytes(graph, value))]

    for kern in plan.calls:
        for value in kern.inputs:
            if plan.locations[value].kind != "workspace":
                continue
            want = owner(value)
            for lo, hi in spans(value):
                covered = sorted((max(a, lo), min(b, hi)) for a, b, v in regions
                                 if a < hi and lo < b and v == want)
                pos = lo
                for a, b in covered:
                    assert a <= pos, f"{kern.name}: %{value} was overwritten before this read"
                    pos = max(pos, b)
                assert pos >= hi, f"{kern.name}: %{value} was overwritten before this read"
        for value in kern.outputs:
            if plan.locations[value].kind != "workspace":
                continue
            for lo, hi in spans(value):
                assert lo >= 0 and hi <= plan.workspace_bytes
                kept = []
                for a, b, v in regions:  # what the write leaves of older regions
                    kept += [(a, min(b, lo), v)] if a < lo else []
                    kept += [(max(a, hi), b, v)] if b > hi else []
                regions = [r for r in kept if r[0] < r[1]] + [(lo, hi, owner(value))]


def strided_rows(part: TensorType, joined: TensorType) -> int:
    """A strided concat part's rows: one per index of the axes before the concat axis."""
    axis = next(d for d in range(part.rank) if part.shape[d] != joined.shape[d])
    return prod(part.shape[:axis])


def branches() -> Graph:
    """Two large branches reduced to small values: running each branch to its reduction
    before starting the other halves the peak."""
    nodes = [helper.make_node("Exp", ["x"], ["e1"]), helper.make_node("Sin", ["x"], ["e2"]),
             helper.make_node("Tanh", ["e1"], ["t1"]), helper.make_node("Tanh", ["e2"], ["t2"]),
             helper.make_node("ReduceSum", ["t1"], ["s1"], keepdims=0),
             helper.make_node("ReduceSum", ["t2"], ["s2"], keepdims=0),
             helper.make_node("Add", ["s1", "s2"], ["y"])]
    return onnx_graph(nodes, {"x": (64, 64)}, ["y"])


def elementwise_chain() -> Graph:
    nodes = [helper.make_node("Exp", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Add", ["b", "x"], ["c"]), helper.make_node("Relu", ["c"], ["d"]),
             helper.make_node("Flatten", ["d"], ["f"]), helper.make_node("Sigmoid", ["f"], ["g"]),
             helper.make_node("Reshape", ["g", "shape"], ["h"]),
             helper.make_node("Mul", ["h", "a"], ["y"])]
    return onnx_graph(nodes, {"x": (2, 3, 8)}, ["y"], {"shape": np.array([2, 3, 8])})


# -- in-place analysis of kernels ---------------------------------------------------------------
def test_inplace_pairs_of_elementwise_transpose_and_reduction() -> None:
    a, b = placeholder((4, 5), "float32", "a"), placeholder((4, 5), "float32", "b")
    add = compute((4, 5), lambda i, j: a[i, j] + b[i, j] * 2.0, "add")
    assert inplace_pairs(lower([a, b], [add], "add")) == [(0, 2), (1, 2)]
    sq = placeholder((5, 5), "float32", "sq")
    flip = compute((5, 5), lambda i, j: sq[j, i] + 1.0, "flip")
    assert inplace_pairs(lower([sq], [flip], "flip")) == []
    r = reduce_axis(5, "r")
    total = compute((5,), lambda i: rsum(sq[i, r], r), "total")
    rows = compute((5, 5), lambda i, j: total[i] + sq[i, j], "rows")
    assert inplace_pairs(lower([sq], [rows], "rows")) == []  # the sums read other elements


def test_inplace_updates_and_zero_copy_aliases_keep_the_numbers() -> None:
    graph = elementwise_chain()
    compiled = assert_compiled_matches(graph, opt_level=0)
    plan = compiled.plan
    assert plan.inplace and plan.aliases
    simulate(compiled.graph, plan)
    for out, src in plan.inplace.items():
        kern = next(k for k in plan.calls if out in k.outputs)
        assert kern.func.attrs.get("may_alias"), kern.name  # emitted without noalias
        assert plan.locations[out] == plan.locations[src]
    # `a` is read again by the last mul: the neg reading it cannot overwrite it
    assert "b" not in plan.inplace
    # the reshapes are not called: their outputs are their inputs' memory
    assert plan.aliases == {"f": "d", "h": "g"} and plan.locations["f"] == plan.locations["d"]
    assert len(plan.calls) == len(compiled.kernels) - 2


def test_the_simulation_catches_overlapping_live_values() -> None:
    compiled = deepc.compile(branches(), "host", opt_level=0)
    plan = compiled.plan
    simulate(compiled.graph, plan)
    # the two reductions are live together (both feed the add): put them at one offset
    plan.locations["s2"] = plan.locations["s1"]
    with pytest.raises(AssertionError, match="overwritten"):
        simulate(compiled.graph, plan)


def test_plans_at_every_level_simulate_cleanly() -> None:
    for graph in (elementwise_chain(), branches()):
        for level in range(4):
            compiled = assert_compiled_matches(graph, opt_level=level)
            simulate(compiled.graph, compiled.plan)


# -- the arena and its bound --------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 8), st.integers(1, 40)),
                min_size=1, max_size=40))
def test_packing_never_overlaps_meeting_blocks(specs: list[tuple[int, int, int]]) -> None:
    blocks = [Block(s, s + n, size * 64) for s, n, size in specs]
    offsets, size = pack(blocks)
    assert size >= peak_bytes(blocks)
    for i, (a, oa) in enumerate(zip(blocks, offsets)):
        assert oa + a.size <= size
        for b, ob in zip(blocks[:i], offsets):
            if a.meets(b):
                assert oa + a.size <= ob or ob + b.size <= oa


def test_call_order_lowers_the_peak_on_branches() -> None:
    graph = branches()
    compiled = deepc.compile(graph, "host", opt_level=0)
    big = value_bytes(compiled.graph, "e1")
    order = [k.outputs[0] for k in compiled.plan.calls]
    # the graph lists both branches' first ops first; the plan runs a branch down to its
    # reduction before starting the other, so one large value is live at a time
    assert [n.outputs[0] for n in graph.nodes][:2] == ["e1", "e2"]
    assert order.index("s1") < order.index("e2")
    assert compiled.plan.workspace_bytes < 2 * big
    stats = compiled.stats()
    assert stats["arena_bytes"] >= stats["arena_lower_bound_bytes"]
    assert stats["naive_bytes"] == 4 * big + 2 * value_bytes(compiled.graph, "s1")
    simulate(compiled.graph, compiled.plan)


def test_compile_json_reports_the_bound_and_naive_bytes(tmp_path: Path) -> None:
    code, out, err = run("compile", str(EXAMPLE), "-o", str(tmp_path / "m.tar"), "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["arena_lower_bound_bytes"] <= stats["arena_bytes"] <= stats["naive_bytes"]


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models_arena_is_within_ten_percent_of_the_bound(name: str) -> None:
    graph = load(shared_model(name))
    for level in (0, 3):
        compiled = deepc.compile(graph, "host", opt_level=level)
        stats = compiled.stats()
        assert stats["arena_bytes"] <= 1.1 * stats["arena_lower_bound_bytes"], stats
        simulate(compiled.graph, compiled.plan)
    np.testing.assert_array_less(0, stats["naive_bytes"])

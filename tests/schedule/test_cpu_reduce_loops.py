"""The tuning knobs over a register tile's loops (schedule/cpu_reduce_loops.py, row_loop and
sweep in cpu_reduction, reduce_blocks through schedule/reduce_blocks.py): each gives the steps it
names, replays from its knobs, keeps the numbers of a blocked conv and a packed GEMM, and an
impossible value raises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deepc.backends.llvm.codegen import emit_module
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
from deepc.errors import ScheduleError
from deepc.ir.loop import For, ForKind, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.passes.support import Net, weights

LANES = 8
MACHINE = CpuMachine(256, 12, 1, 32, 512)  # AVX2-like, one core: no thread knob in the way


def _conv(out: int = 16) -> tuple[Any, Any, dict[str, np.ndarray], str]:
    n = Net(x=(1, 2, 6, 14, LANES))
    w = weight_to_blocked(weights(out, 16, 3, 3), LANES, LANES, False)
    y = n("relu", n("conv_nchwc", "x", n.const(w), n.const(weights(out)), pads=(1, 1, 1, 1)))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    x = np.random.default_rng(0).standard_normal((1, 16, 6, 14)).astype(np.float32)
    return graph, kernel, {"x": block_array(x, LANES)}, y


def _run(func: Any, args: list[np.ndarray], out_shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(out_shape, np.float32)
    jit = JitModule(optimize(emit_module([func]), MachineSpec.host()))
    jit.kernel(func.name, len(args) + 1)(*[np.ascontiguousarray(a).ctypes.data
                                           for a in [*args, out]])
    return out


def _main(knobs: dict[str, Any]) -> str:
    """The prefix of the conv nest's knobs (the padding is a nest of its own)."""
    kind = next(k for k, v in knobs.items() if v == "register_tile")
    return kind.removesuffix("kind")


@pytest.mark.parametrize(("change", "primitive", "out"), [
    ({"reduce_inner": 1}, "reorder", 16),
    ({"reduce_inner": 2, "unroll": 3}, "unroll", 16),
    ({"unroll": 2}, "split", 16),
    ({"unroll": 8}, "unroll", 16),
    ({"row_loop": 1, "rows": 3}, "split", 16),
    ({"pair_block": 3, "rows": 7}, "split", 48),  # 3 of the 6 channel blocks share a broadcast
    # rows that leave a tail of the 14 pixels: the last tile of pairs is tested once
    ({"pair_block": 3, "rows": 5}, "version_rows", 48),
    ({"row_pairs": True, "rows": 4}, "version_rows", 16),
    ({"outer_inner": 2, "rows": 7}, "reorder", 32),  # channel blocks inside the image rows
    # image rows inside the input-channel blocks: one tile of accumulators per row
    ({"sweep": True}, "reorder", 16),
    ({"sweep": True, "unroll": 2}, "split", 32),
    ({"reduce_blocks": 2}, "block_reduction", 16),  # input channel blocks outside the outputs
    ({"reduce_blocks": 2, "reduce_inner": 2, "outer_inner": 1}, "block_reduction", 32),
])
def test_knob_keeps_the_numbers(change: dict[str, Any], primitive: str, out: int) -> None:
    graph, kernel, feeds, y = _conv(out)
    default = default_schedule(kernel.func, MACHINE)
    prefix = _main(default.knobs)
    knobs = {**default.knobs, **{prefix + k: v for k, v in change.items()}}
    sch = default_schedule(kernel.func, MACHINE, knobs)
    new = [s for s in sch.to_list() if s not in default.to_list()]
    assert any(s[0] == primitive for s in new), new
    assert {k: sch.knobs[prefix + k] for k in change} == change
    assert default_schedule(kernel.func, MACHINE, sch.knobs).to_list() == sch.to_list()
    func = sch.apply(kernel.func)
    unrolled = [f for f in walk_stmts(func.body) if isinstance(f, For)
                and f.kind is ForKind.UNROLLED and f.var.name.startswith("convc_r")]
    assert bool(unrolled) == ("unroll" in change)
    args = [feeds["x"], *(graph.constants[i] for i in kernel.inputs[1:])]
    out = _run(func, args, graph.types[y].shape)
    np.testing.assert_allclose(out, run_graph(graph, feeds)[y], rtol=1e-5, atol=1e-5)


def test_defaults_name_no_new_knob() -> None:
    """Without a log the schedule is what it was: the new knobs appear only when changed."""
    _, kernel, _, _ = _conv()
    knobs = default_schedule(kernel.func, MACHINE).knobs
    assert not {k.rpartition(".")[2] for k in knobs} & {"reduce_inner", "unroll", "row_loop",
                                                        "sweep", "reduce_blocks"}
    prefix = _main(knobs)
    spelt = {**knobs, prefix + "reduce_inner": 0, prefix + "unroll": 1, prefix + "row_loop": 0,
             prefix + "reduce_blocks": 1}
    assert default_schedule(kernel.func, MACHINE, spelt).to_list() == \
        default_schedule(kernel.func, MACHINE).to_list()


@pytest.mark.parametrize("change", [
    {"unroll": 5}, {"unroll": 0}, {"unroll": 2.0}, {"unroll": 32}, {"reduce_inner": 4},
    {"reduce_inner": -1}, {"reduce_inner": True}, {"row_loop": 5}, {"row_loop": "x"},
    {"pair_block": 1}, {"pair_block": 3},  # two channel blocks: 3 does not divide them
    {"outer_inner": 3}, {"outer_inner": 1.0},
    {"reduce_blocks": 3}, {"reduce_blocks": 0}, {"reduce_blocks": 2.0},
    {"reduce_blocks": 2, "reduce_inner": 3, "unroll": 2},  # the blocked loop is the one split
])
def test_impossible_values_raise(change: dict[str, Any]) -> None:
    _, kernel, _, _ = _conv()
    default = default_schedule(kernel.func, MACHINE)
    prefix = _main(default.knobs)
    with pytest.raises(ScheduleError):
        default_schedule(kernel.func, MACHINE,
                         {**default.knobs, **{prefix + k: v for k, v in change.items()}})


def test_blocked_reduction_carries_sums_across_threads() -> None:
    """Blocks of the reduction outside a parallel loop over the outputs: each output's partial
    sum waits in the scratch between blocks, whichever thread took it, and only the last block
    applies the bias and the ReLU."""
    graph, kernel, feeds, y = _conv(32)
    two = CpuMachine(256, 12, 2, 32, 512)
    default = default_schedule(kernel.func, two)
    prefix = _main(default.knobs)
    sch = default_schedule(kernel.func, two, {**default.knobs, prefix + "reduce_blocks": 2})
    assert [s[0] for s in sch.to_list()].index("block_reduction") < \
        [s[0] for s in sch.to_list()].index("parallel")
    func = sch.apply(kernel.func)
    assert any(f.kind is ForKind.PARALLEL for f in walk_stmts(func.body) if isinstance(f, For))
    args = [feeds["x"], *(graph.constants[i] for i in kernel.inputs[1:])]
    out = _run(func, args, graph.types[y].shape)
    np.testing.assert_allclose(out, run_graph(graph, feeds)[y], rtol=1e-5, atol=1e-5)


def test_tile_knobs_on_an_elementwise_nest_raise() -> None:
    _, kernel, _, _ = _conv()
    default = default_schedule(kernel.func, MACHINE)
    pad = next(k for k, v in default.knobs.items() if v == "vector").removesuffix("kind")
    with pytest.raises(ScheduleError):
        default_schedule(kernel.func, MACHINE, {**default.knobs, pad + "unroll": 2})


def test_packed_gemm_unrolled_keeps_the_numbers() -> None:
    from deepc.ops.interpreter import run_graph as run

    n = Net(a=(96, 64))
    b = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)
    y = n("matmul", "a", n.const(b))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    knobs = {"pack": True, "kind": "packed_gemm", "unroll": 4}
    sch = default_schedule(kernel.func, MACHINE, knobs)
    assert sch.knobs["kind"] == "packed_gemm" and sch.knobs["unroll"] == 4
    assert ["unroll", "matmul_rk_i"] in sch.to_list() or any(
        s[0] == "unroll" and str(s[1]).endswith("_i") for s in sch.to_list())
    a = np.random.default_rng(2).standard_normal((96, 64)).astype(np.float32)
    out = _run(sch.apply(kernel.func), [a, b], graph.types[y].shape)
    np.testing.assert_allclose(out, run(graph, {"a": a})[y], rtol=1e-4, atol=1e-4)
    with pytest.raises(ScheduleError):
        default_schedule(kernel.func, MACHINE, {**knobs, "reduce_blocks": 2})


@pytest.mark.parametrize(("edit", "message"), [
    (lambda at, loop, blocks: (at, loop, 3), "do not divide"),
    (lambda at, loop, blocks: (at, "no_such_loop", blocks), "not under one accumulator"),
    (lambda at, loop, blocks: ("no_such_loop", loop, blocks), "no loop named"),
])
def test_block_reduction_that_cannot_apply_raises_schedule_error(edit: Any, message: str
                                                                 ) -> None:
    """A replayed step that does not fit the nest is a ScheduleError (the tuner logs the
    candidate as rejected), not a ValueError that ended a `tune --remote` run."""
    from deepc.schedule.schedule import Schedule

    _, kernel, _, _ = _conv()
    default = default_schedule(kernel.func, MACHINE)
    prefix = _main(default.knobs)
    steps = default_schedule(kernel.func, MACHINE,
                             {**default.knobs, prefix + "reduce_blocks": 2}).to_list()
    steps = [["block_reduction", *edit(*s[1:])] if s[0] == "block_reduction" else s
             for s in steps]
    with pytest.raises(ScheduleError, match=message):
        Schedule.from_list(steps).apply(kernel.func)

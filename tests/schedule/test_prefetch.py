"""prefetch_next: a conv whose weights outgrow L2 asks for its next output-channel panel a few
lines per reduction step while it works on the current one; the numbers stay the reference's."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.errors import ScheduleError
from deepc.ir.expr import AddressOf
from deepc.ir.loop import Evaluate, For, Seq, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.passes.support import Net, weights
from tests.schedule.test_cpu_conv_tiles import run_blocked

LANES = 8


def conv(c: int = 32, o: int = 32, size: int = 7):  # type: ignore[no-untyped-def]
    n = Net(x=(1, c // LANES, size, size, LANES))
    w = weight_to_blocked(weights(o, c, 3, 3), LANES, LANES, False)
    y = n("relu", n("conv_nchwc", "x", n.const(w), n.const(weights(o)), pads=(1, 1, 1, 1),
                    group=1))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    return graph, kernel, y


def machine(l2_kib: int) -> CpuMachine:
    return CpuMachine(256, 12, 1, 32, l2_kib)  # 8 float lanes


def conv_knobs(knobs: dict) -> dict:
    return {k.partition(".")[2]: v for k, v in knobs.items() if k.startswith("conv_nchwc")}


def prefetches(func) -> list[Evaluate]:  # type: ignore[no-untyped-def]
    return [s for s in walk_stmts(func.body)
            if isinstance(s, Evaluate) and s.intrinsic == "prefetch"]


@pytest.mark.parametrize("l2_kib", [16, 1024])
def test_prefetch_when_weights_outgrow_l2(l2_kib: int) -> None:
    """32x32x3x3 weights are 36 KiB: past a 16 KiB L2 the conv prefetches, in the reduction
    loop around the innermost, enough lines per step that the 7 output rows' 7 x 36 steps
    cover the next panel; inside a 1 MiB L2 it does not."""
    graph, kernel, y = conv()
    sch = default_schedule(kernel.func, machine(l2_kib))
    func = sch.apply(kernel.func)
    found = prefetches(func)
    knobs = conv_knobs(sch.knobs)
    if l2_kib == 1024:
        assert not found and "prefetch" not in knobs
        return
    assert knobs["prefetch"] is True
    blocks = 2 if knobs["row_pairs"] else 1
    panel_lines = blocks * 4 * 3 * 3 * 8 * 8 // 16  # a block's weights, 16 floats a line
    assert len(found) == -(-panel_lines // (7 * 4 * 3 * 3))
    # of the blocked weights [o/8, c/8, 3, 3, 8, 8], not the input
    assert all(isinstance(p.args[0], AddressOf) and p.args[0].source.shape == (4, 4, 3, 3, 8, 8)
               for p in found)
    (holder,) = [f for f in walk_stmts(func.body) if isinstance(f, For)
                 and isinstance(f.body, Seq) and found[0] in f.body.stmts]
    # a reduction loop whose body, after the prefetches, is the innermost reduction loop
    assert holder.var.name.startswith("convc_r")
    inner = holder.body.stmts[-1]
    assert isinstance(inner, For) and inner.var.name.startswith("convc_r")
    x = np.random.default_rng(0).standard_normal((1, 32, 7, 7)).astype(np.float32)
    run_blocked(func, graph, kernel, y, x, LANES)


def test_prefetch_knob() -> None:
    """prefetch=False leaves it out where the default would add it; prefetch=True adds it
    where the weights fit L2, with the same numbers."""
    graph, kernel, y = conv()
    off = default_schedule(kernel.func, machine(16), {"conv_nchwc_i0.prefetch": False})
    assert not prefetches(off.apply(kernel.func)) and "prefetch" not in conv_knobs(off.knobs)
    on = default_schedule(kernel.func, machine(1024), {"conv_nchwc_i0.prefetch": True})
    func = on.apply(kernel.func)
    assert prefetches(func) and conv_knobs(on.knobs)["prefetch"] is True
    x = np.random.default_rng(1).standard_normal((1, 32, 7, 7)).astype(np.float32)
    run_blocked(func, graph, kernel, y, x, LANES)


def test_prefetch_needs_a_panel_loop() -> None:
    """One output-channel block: no loop over panels to prefetch the next of."""
    _, kernel, _ = conv(c=8, o=8)
    with pytest.raises(ScheduleError, match="prefetch=True"):
        default_schedule(kernel.func, machine(1024), {"conv_nchwc_i0.prefetch": True})

"""Whether a register-tiled CPU nest prefetches its next operand panel (prefetch_next), read
from the nest and the target's L2 size and cache line."""

from __future__ import annotations

from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.expr import Load, Var
from deepc.ir.loop import Allocate, For, loops
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_reduction import update_loads


def plan_prefetch(chain: list[For], outer: list[tuple[str, int]], machine: CpuMachine,
                  want: dict[str, Any]) -> tuple[list[tuple], dict[str, Any]]:
    """The prefetch_next step for a tiled nest whose `outer` loops (outermost first, as the
    tile plan left them) run over blocks of an operand (a panel loop: a conv's output-channel
    pairs) with a loop inside that reuses each block (its output rows), where the operand is
    larger than L2, so that every run reads it from L3 or memory, panel by panel.
    `want["prefetch"]` forces it on (raising where the nest has no such loops) or off."""
    asked = want.get("prefetch")
    found = None if asked is False else _panel_loops(chain, outer, machine, asked is True)
    if found is None:
        if asked:
            raise ScheduleError("prefetch=True needs a loop over blocks of an operand, a loop"
                                " inside it that reuses each block and two reduction loops")
        return [], {}
    return [("prefetch_next", *found, machine.cache_line)], {"prefetch": True}


def _panel_loops(chain: list[For], outer: list[tuple[str, int]], machine: CpuMachine,
                 any_size: bool) -> tuple[str, str, str, str, str] | None:
    """(panel loop, reusing loop, first and last reduction loop the prefetches are shared
    over, operand) — the last reduction loop is the one around the innermost, so that each
    prefetch covers a few of its steps' lines rather than costing one per step."""
    alloc = chain[-1].body
    assert isinstance(alloc, Allocate)
    reductions = loops(alloc.body)
    if len(reductions) < 2:
        return None
    for load in sorted(set(update_loads(alloc)), key=lambda ld: (-_bytes(ld), ld.source.name)):
        if not any_size and _bytes(load) <= machine.l2_kib * 1024:
            continue
        uses = {x.name for i in load.indices for x in walk(i) if isinstance(x, Var)}
        # a split loop is named after its variable with _o: the load reads the original
        moves = [n.removesuffix("_o") in uses for n, _ in outer]
        for k in range(len(outer) - 1, -1, -1):
            reuse = [n for m, (n, e) in zip(moves[k + 1:], outer[k + 1:]) if not m and e >= 2]
            if moves[k] and outer[k][1] >= 2 and reuse:
                return (outer[k][0], reuse[0], reductions[0].var.name,
                        reductions[-2].var.name, load.source.name)
    return None


def _bytes(load: Load) -> int:
    return load.source.size * itemsize(load.source.dtype)

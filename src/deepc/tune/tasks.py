"""Tuning tasks: a model's kernels grouped by workload, with their default schedules and the
loop features the cost model reads."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from deepc.errors import ScheduleError
from deepc.ir.loop import Allocate, For, PrimFunc, loops
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import Kernel
from deepc.schedule.cpu import default_schedule, perfect_chain, top_level_nests, work
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_reduce_loops import weight_bytes
from deepc.schedule.cpu_reduction import update_loads
from deepc.schedule.record import Workload
from deepc.schedule.schedule import Schedule
from deepc.tune.log import knobs_key
from deepc.tune.space import (
    accumulators,
    knob_axes,
    knob_features,
    register_tiles,
    respread_threads,
    within_registers,
)

SEEDS = 8  # register-filling tiles tried before the random search, per task


@dataclass
class Task:
    key: str  # Workload.key
    kernel: str  # the first kernel of this workload, by name
    ops: tuple[str, ...]
    func: PrimFunc  # lowered, unscheduled
    count: int  # kernels of the model with this workload
    default: Schedule
    features: list[float]  # the loop nest's, independent of the knobs
    main: str  # knob prefix of the nest with the most work ("" when there is one nest)
    machine: CpuMachine
    tolerance: float = 1e-4  # how far a candidate's outputs may be from the default's

    def schedule(self, knobs: dict[str, Any]) -> Schedule:
        """The candidate's schedule (raises ScheduleError for knobs the nest rejects)."""
        return default_schedule(self.func, self.machine, knobs)

    def axes(self) -> dict[str, list[Any]]:
        """The values worth trying per knob (combinations may still be rejected)."""
        nests = top_level_nests(self.func.body)
        prefixes = [f"{n.var.name}." if len(nests) > 1 else "" for n in nests]
        l2 = self.machine.l2_kib * 1024
        streamed = frozenset(p for n, p in zip(nests, prefixes)
                             if weight_bytes(perfect_chain(n)) > l2)
        return knob_axes(dict(self.default.knobs), self.machine, streamed)

    def fits(self, knobs: dict[str, Any]) -> bool:
        """Whether a candidate is worth building (its register tiles do not spill)."""
        return within_registers(knobs, self.machine)

    def canonical(self, knobs: dict[str, Any],
                  base: dict[str, Any] | None = None) -> dict[str, Any]:
        """The knobs as sampled from `base` (the default's by default), less the thread
        counts that the changes make stale; scheduling names the spelling (step() logs
        repeats)."""
        return respread_threads(knobs, base or dict(self.default.knobs))

    def knob_features(self, knobs: dict[str, Any]) -> list[float]:
        return knob_features(knobs, self.main, self.machine.lanes("float32"))

    def seeds(self) -> list[dict[str, Any]]:
        """The register-filling tiles (tune.space.register_tiles) that the nest takes, the
        most accumulators busy first: a short last tile of the row loop counts its missing
        rows as idle (13 pixels in rows of 7 keep 13/14 busy, in rows of 8 13/16), and
        of two tiles as busy, the one loading fewer operands per multiply-add."""
        nests = top_level_nests(self.func.body)
        main = next((n for n in nests if f"{n.var.name}." == self.main), nests[0])
        if not _multiplies(main):
            return []
        lanes = self.machine.lanes("float32")
        extents = {s.var.name: s.extent for s in loops(self.func.body)}
        scored: dict[str, tuple[tuple[float, float], dict[str, Any]]] = {}
        for knobs in register_tiles(dict(self.default.knobs), self.main, self.machine):
            knobs = self.canonical(knobs)
            try:
                sch = self.schedule(knobs)
            except ScheduleError:
                continue
            rows = int(sch.knobs.get(f"{self.main}rows", 1))
            held = accumulators(sch.knobs, self.main, lanes)
            tiled = [extents[s.args[0]] for s in sch.steps if s.primitive == "split"
                     and s.args[1] == rows and s.args[0] in extents]
            busy = tiled[0] / (-(-tiled[0] // rows) * rows) if tiled else 1.0
            loads = (held // rows + rows) / held  # operands loaded per multiply-add
            scored.setdefault(knobs_key(sch.knobs), ((-held * busy, loads), dict(sch.knobs)))
        scored.pop(knobs_key(dict(self.default.knobs)), None)
        return [knobs for _, knobs in sorted(scored.values(), key=lambda s: s[0])][:SEEDS]


class _Counted(Protocol):
    count: int


T = TypeVar("T", bound=_Counted)


def by_workload(kernels: list[Kernel], target: Any,
                make: Callable[[str, Kernel], T | None]) -> list[T]:
    """One task per distinct workload of `kernels`, in first-use order, made by `make(key,
    kernel)` (None: not a task); a workload met again counts once more."""
    fingerprint = target.fingerprint()
    tasks: dict[str, T] = {}
    for k in kernels:
        key = Workload.of(k.func, k.ops, fingerprint).key
        if key in tasks:
            tasks[key].count += 1
        elif (task := make(key, k)) is not None:
            tasks[key] = task
    return list(tasks.values())


def extract_tasks(kernels: list[Kernel], target: Any) -> list[Task]:
    """The distinct workloads of a model's kernels, in first-use order."""
    machine = CpuMachine.of(target)
    return by_workload(kernels, target, lambda key, k: _cpu_task(key, k, machine))


def _cpu_task(key: str, k: Kernel, machine: CpuMachine) -> Task:
    func = verify_func(k.func)
    nests = top_level_nests(func.body)
    works = [work(n) for n in nests] or [1]
    main = nests[works.index(max(works))].var.name + "." if len(nests) > 1 else ""
    features = [math.log2(sum(works)), float(len(nests)), float(len(func.params)),
                *_extents(nests[works.index(max(works))] if nests else None)]
    return Task(key, k.name, tuple(k.ops), func, 1,
                default_schedule(func, machine), features, main, machine)


def _multiplies(nest: For) -> bool:
    """Whether the nest's accumulator update multiplies two operands (a conv, a matmul),
    which a register tile shares from registers; a pool's or a mean's reads one (its rows
    only hide the latency of one accumulator's chain: a few suffice)."""
    alloc = perfect_chain(nest)[-1].body
    if not isinstance(alloc, Allocate):
        return False
    read = {x.source for x in update_loads(alloc)}
    return len(read - {alloc.buffer}) >= 2


def _extents(nest: Any, depth: int = 5) -> list[float]:
    """log2 of the outer loops' extents of the main nest (0 where it is shallower)."""
    out = []
    while nest is not None and hasattr(nest, "extent") and len(out) < depth:
        out.append(math.log2(max(nest.extent, 1)))
        nest = nest.body
    return out + [0.0] * (depth - len(out))

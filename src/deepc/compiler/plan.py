"""Execution plan: kernel call order and where every value lives.

Inputs and outputs are the caller's buffers, constants live in the params blob, and every
other value gets an offset in one workspace arena, reused once the value is dead (first fit
by liveness over the call order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from deepc.compiler.kernels import Kernel
from deepc.ir.graph import Graph

ALIGN = 64


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


@dataclass(frozen=True)
class Location:
    kind: str  # "input" | "output" | "param" | "workspace"
    index: int = 0  # input/output slot
    offset: int = 0  # bytes into params or workspace

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "index": self.index, "offset": self.offset}


@dataclass
class Plan:
    calls: list[Kernel]
    locations: dict[str, Location]
    workspace_bytes: int
    params_bytes: int
    param_order: list[str] = field(default_factory=list)
    naive_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "calls": [{"kernel": k.name, "args": list(k.args), "nodes": list(k.nodes)}
                      for k in self.calls],
            "locations": {k: v.to_dict() for k, v in self.locations.items()},
            "arena_bytes": self.workspace_bytes,
            "params_bytes": self.params_bytes,
        }


def layout_params(graph: Graph, used: set[str]) -> tuple[dict[str, int], int, list[str]]:
    offsets: dict[str, int] = {}
    pos = 0
    order = sorted(k for k in graph.constants if k in used)
    for name in order:
        offsets[name] = pos
        pos = align(pos + max(int(graph.constants[name].nbytes), 1))
    return offsets, pos, order


def make_plan(graph: Graph, kernels: Sequence[Kernel]) -> Plan:
    locations: dict[str, Location] = {}
    for k, name in enumerate(graph.inputs):
        locations[name] = Location("input", k)
    for k, name in enumerate(graph.outputs):
        locations[name] = Location("output", k)
    used = {a for kern in kernels for a in kern.args}
    offsets, params_bytes, order = layout_params(graph, used)
    for name, off in offsets.items():
        locations[name] = Location("param", offset=off)

    last_use: dict[str, int] = {}
    for step, kern in enumerate(kernels):
        for a in kern.args:
            last_use[a] = step
    free: list[tuple[int, int]] = []  # (offset, size) holes
    end = 0
    naive = 0
    live: dict[str, tuple[int, int]] = {}
    for step, kern in enumerate(kernels):
        for out in kern.outputs:
            if out in locations:
                continue
            size = align(max(graph.types[out].nbytes, 1))
            naive += size
            off = _first_fit(free, size)
            if off is None:
                off, end = end, end + size
            locations[out] = Location("workspace", offset=off)
            live[out] = (off, size)
        for name in [n for n in live if last_use.get(n, -1) <= step]:
            free.append(live.pop(name))
            free[:] = _coalesce(free)
    return Plan(list(kernels), locations, end, params_bytes, order, naive)


def _first_fit(free: list[tuple[int, int]], size: int) -> int | None:
    for k, (off, n) in enumerate(free):
        if n >= size:
            if n == size:
                free.pop(k)
            else:
                free[k] = (off + size, n - size)
            return off
    return None


def _coalesce(free: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for off, n in sorted(free):
        if merged and merged[-1][0] + merged[-1][1] == off:
            merged[-1] = (merged[-1][0], merged[-1][1] + n)
        else:
            merged.append((off, n))
    return merged

"""A schedule is data: a list of primitive applications, printable and replayable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepc.ir.loop import PrimFunc
from deepc.schedule import packing, placement, primitives, reduction

PRIMITIVES = {
    "split": primitives.split, "fuse": primitives.fuse, "reorder": primitives.reorder,
    "tile": primitives.tile, "vectorize": primitives.vectorize, "unroll": primitives.unroll,
    "parallel": primitives.parallel, "bind": primitives.bind,
    "compute_at": placement.compute_at, "compute_inline": placement.compute_inline,
    "cache_read": placement.cache_read, "cache_write": placement.cache_write,
    "tile_reduction": reduction.tile_reduction, "pack": packing.pack,
}


@dataclass(frozen=True)
class Step:
    primitive: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.primitive}({', '.join(map(repr, self.args))})"


@dataclass
class Schedule:
    steps: list[Step] = field(default_factory=list)
    knobs: dict[str, Any] = field(default_factory=dict)  # the choices the steps encode, named

    def add(self, primitive: str, *args: Any) -> Schedule:
        if primitive not in PRIMITIVES:
            raise KeyError(f"unknown schedule primitive {primitive!r}")
        self.steps.append(Step(primitive, tuple(args)))
        return self

    def apply(self, f: PrimFunc) -> PrimFunc:
        for step in self.steps:
            f = PRIMITIVES[step.primitive](f, *step.args)
        return f

    def to_list(self) -> list[list[Any]]:
        return [[s.primitive, *s.args] for s in self.steps]

    @staticmethod
    def from_list(items: list[list[Any]], knobs: dict[str, Any] | None = None) -> Schedule:
        return Schedule([Step(i[0], tuple(i[1:])) for i in items], dict(knobs or {}))

    def __str__(self) -> str:
        return "\n".join(map(str, self.steps))

"""A schedule is data: a list of primitive applications, printable and replayable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepc.ir.loop import PrimFunc
from deepc.schedule import (
    gpu_block,
    gpu_gemm,
    gpu_split,
    gpu_warp,
    interior,
    interleave,
    lane_guard,
    packing,
    placement,
    prefetch,
    primitives,
    reduce_blocks,
    reduce_outside,
    reduction,
    row_guard,
)

PRIMITIVES = {
    "split": primitives.split, "fuse": primitives.fuse, "reorder": primitives.reorder,
    "tile": primitives.tile, "vectorize": primitives.vectorize, "unroll": primitives.unroll,
    "parallel": primitives.parallel,
    "pipeline": primitives.pipeline, "partition": primitives.partition, "bind": primitives.bind,
    "interleave": interleave.interleave, "reduce_outside": reduce_outside.reduce_outside,
    "compute_at": placement.compute_at, "compute_inline": placement.compute_inline,
    "cache_read": placement.cache_read, "cache_write": placement.cache_write,
    "tile_reduction": reduction.tile_reduction, "rfactor": reduction.rfactor,
    "block_reduction": reduce_blocks.block_reduction,
    "pack": packing.pack, "unguard_lanes": lane_guard.unguard_lanes,
    "version_rows": row_guard.version_rows, "version_interior": interior.version_interior,
    "prefetch_next": prefetch.prefetch_next,
    # whole GPU kernels from a matched stage; their knobs are keyword arguments
    "tile_gemm": gpu_gemm.tile_gemm, "split_k_sum": gpu_split.split_k_sum,
    "warp_reduce": gpu_warp.warp_reduce, "block_threads": gpu_block.block_threads,
}


@dataclass(frozen=True)
class Step:
    primitive: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...] = ()  # named knobs

    def __str__(self) -> str:
        named = [f"{k}={x!r}" for k, x in self.kwargs]
        return f"{self.primitive}({', '.join([*map(repr, self.args), *named])})"


@dataclass
class Schedule:
    steps: list[Step] = field(default_factory=list)
    knobs: dict[str, Any] = field(default_factory=dict)  # the choices the steps encode, named

    def add(self, primitive: str, *args: Any, **kwargs: Any) -> Schedule:
        if primitive not in PRIMITIVES:
            raise KeyError(f"unknown schedule primitive {primitive!r}")
        self.steps.append(Step(primitive, tuple(args), tuple(kwargs.items())))
        return self

    def apply(self, f: PrimFunc) -> PrimFunc:
        for step in self.steps:
            f = PRIMITIVES[step.primitive](f, *step.args, **dict(step.kwargs))
        return f

    def to_list(self) -> list[list[Any]]:
        """[primitive, *args] per step, then a dict of the named knobs where there are any."""
        return [[s.primitive, *s.args, *([dict(s.kwargs)] if s.kwargs else [])]
                for s in self.steps]

    @staticmethod
    def from_list(items: list[list[Any]], knobs: dict[str, Any] | None = None) -> Schedule:
        """The inverse of `to_list` (a trailing dict holds a step's named arguments)."""
        return Schedule([Step(i[0], tuple(i[1:-1]), tuple(i[-1].items()))
                         if len(i) > 1 and isinstance(i[-1], dict) else Step(i[0], tuple(i[1:]))
                         for i in items], dict(knobs or {}))

    def __str__(self) -> str:
        return "\n".join(map(str, self.steps))

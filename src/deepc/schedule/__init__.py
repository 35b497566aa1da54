"""Schedules: Halide/TVM-style primitives that transform loop IR, kept as replayable data."""

from deepc.schedule.placement import cache_read, cache_write, compute_at, compute_inline
from deepc.schedule.primitives import (
    bind,
    fuse,
    parallel,
    reorder,
    split,
    tile,
    unroll,
    vectorize,
)
from deepc.schedule.schedule import Schedule, Step

__all__ = ["Schedule", "Step", "bind", "cache_read", "cache_write", "compute_at",
           "compute_inline", "fuse", "parallel", "reorder", "split", "tile", "unroll",
           "vectorize"]

"""Schedules: Halide/TVM-style primitives that transform loop IR, kept as replayable data."""

from deepc.schedule.primitives import (
    bind, fuse, parallel, reorder, split, tile, unroll, vectorize,
)
from deepc.schedule.schedule import Schedule, Step

__all__ = ["Schedule", "Step", "bind", "fuse", "parallel", "reorder", "split", "tile",
           "unroll", "vectorize"]

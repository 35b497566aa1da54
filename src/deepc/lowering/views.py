"""Concat kernels to views: each part's producer writes into its slice of the concat's buffer.

A concat along an axis with only extent-1 axes before it (axis 1 of NCHW or NCHW[b]c at
batch 1) lays each part out as one contiguous range of its output. When every part is
written by a kernel for this concat alone, the plan gives each part's value the memory at
that range's offset and calls no copy kernel: the producers store straight into the joined
buffer. A part's kernel sees an ordinary row-major buffer at an offset, so every backend and
runtime reads such a view through the plan's (kind, index, offset) locations alone.

Other concats (batch > 1, an inner axis) would need strided stores and keep their copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import prod

from deepc.ir.graph import Graph
from deepc.ir.types import TensorType
from deepc.lowering.kernels import Kernel

# a part's offset keeps the widest vector access any backend makes (CUDA/OpenCL float4)
VIEW_ALIGN = 16


def part_offsets(parts: Sequence[TensorType], axis: int) -> list[int] | None:
    """Byte offsets of the concat parts `parts` in the output, when each is one contiguous,
    VIEW_ALIGN-aligned range of it; None otherwise (or when a part is empty)."""
    if not parts or prod(parts[0].shape[:axis]) != 1:
        return None
    offsets, pos = [], 0
    for part in parts:
        if part.nbytes == 0 or pos % VIEW_ALIGN:
            return None
        offsets.append(pos)
        pos += part.nbytes
    return offsets


def concat_views(graph: Graph, kernels: Sequence[Kernel], fixed: Mapping[str, object],
                 aliases: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    """part value -> (the concat's output, byte offset) for every lone concat kernel whose
    parts can all be written in place: each part is the output of another kernel, read by
    this concat only, and not a graph input, output or constant nor a zero-copy alias."""
    nodes = {n.name: n for n in graph.nodes}
    produced = {o for k in kernels for o in k.outputs}
    readers: dict[str, int] = {}
    for kern in kernels:
        for a in set(kern.inputs):
            readers[a] = readers.get(a, 0) + 1
    views: dict[str, tuple[str, int]] = {}
    for kern in kernels:
        if kern.ops != ("concat",):
            continue
        node = nodes[kern.nodes[0]]
        parts = [i for i in node.inputs if i]
        offsets = part_offsets([graph.types[p] for p in parts], int(node.attr("axis")))
        if offsets is None or len(set(parts)) != len(parts) or any(
                p in fixed or p in aliases or p not in produced or readers.get(p) != 1
                for p in parts):
            continue
        for part, off in zip(parts, offsets):
            views[part] = (kern.outputs[0], off)
    return views

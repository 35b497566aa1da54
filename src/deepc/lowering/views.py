"""Concat kernels to views: each part's producer writes into its slice of the concat's buffer.

A concat along an axis with only extent-1 axes before it (axis 1 of NCHW or NCHW[b]c at
batch 1) lays each part out as one contiguous range of its output. Otherwise (a batch, or
an inner axis) it is strided: each of the part's rows (one per index of the axes before the
concat axis) lies one joined row after the last, at the part's offset within the row.
When every part is written by a kernel for this concat alone, the plan gives each part's
value the memory at its first element and calls no copy kernel: the producers store
straight into the joined buffer. A contiguous part's kernel sees an ordinary row-major
buffer at an offset; a strided part's producer declares the part with the joined shape
(`widen_parts`), so that its own indices reach the joined buffer's elements through the
joined strides, and every backend and runtime still reads such a view through the plan's
(kind, index, offset) locations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from math import prod

from deepc.ir.expr import Expr, Load
from deepc.ir.graph import Graph
from deepc.ir.loop import Buffer, PrimFunc, Stmt, Store
from deepc.ir.rewrite import map_expr
from deepc.ir.types import TensorType
from deepc.lowering.kernels import Kernel
from deepc.schedule.stmt_rewrite import map_exprs, map_stmt

# a part's offset keeps the widest vector access any backend makes (CUDA/OpenCL float4)
VIEW_ALIGN = 16


def part_offsets(parts: Sequence[TensorType], axis: int) -> list[int] | None:
    """Byte offsets of the concat parts `parts` in the output (each part's first element),
    when each part's rows start VIEW_ALIGN-aligned; None otherwise (or when a part is
    empty)."""
    if not parts:
        return None
    rows = prod(parts[0].shape[:axis])
    offsets, pos = [], 0
    for part in parts:
        if part.nbytes == 0 or pos % VIEW_ALIGN:
            return None
        offsets.append(pos)
        pos += part.nbytes // rows
    return offsets if rows == 1 or pos % VIEW_ALIGN == 0 else None


def strided_shape(part: TensorType, joined: TensorType) -> tuple[int, ...] | None:
    """The shape a strided part's producer indexes it by (the joined one); None for a part
    that is one contiguous range of the joined buffer."""
    axis = next((d for d, (a, b) in enumerate(zip(part.shape, joined.shape)) if a != b), None)
    if axis is None or prod(joined.shape[:axis]) == 1:
        return None
    return joined.shape


def concat_views(graph: Graph, kernels: Sequence[Kernel], fixed: Mapping[str, object],
                 aliases: Mapping[str, str], widen: bool = False) -> dict[str, tuple[str, int]]:
    """part value -> (the concat's output, byte offset) for every lone concat kernel whose
    parts can all be written in place: each part is the output of another kernel, read by
    this concat only, and not a graph input, output or constant nor a zero-copy alias. A
    strided part also needs its producer to declare it with the joined shape (what
    `widen_parts` makes of it; with `widen`, the parts it would widen count as such)."""
    nodes = {n.name: n for n in graph.nodes}
    produced = {o for k in kernels for o in k.outputs}
    declared = {o: b.shape for k in kernels for o, b in zip(k.args, k.func.params)
                if o in k.outputs}
    joins = {k.outputs[0] for k in kernels if k.ops == ("concat",)}
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
        joined = graph.types[kern.outputs[0]]
        if offsets is None or len(set(parts)) != len(parts) or any(
                p in fixed or p in aliases or p not in produced or readers.get(p) != 1
                for p in parts):
            continue
        wide = [strided_shape(graph.types[p], joined) for p in parts]
        if any(w is not None for w in wide) and any(p in joins for p in parts):
            continue  # strided parts of a part would need this concat's strides: it copies
        if not widen and any(w is not None and declared[p] != w for p, w in zip(parts, wide)):
            continue
        for part, off in zip(parts, offsets):
            views[part] = (kern.outputs[0], off)
    return views


def widen_parts(graph: Graph, kernels: Sequence[Kernel],
                views: Mapping[str, tuple[str, int]]) -> list[Kernel]:
    """`kernels` with each strided part of `views` declared, by the kernel that writes it,
    with its concat's shape: the same indices then address the part's elements in the
    joined buffer, from the part's first element on."""
    wide = {p: w for p, (concat, _) in views.items()
            if (w := strided_shape(graph.types[p], graph.types[concat])) is not None}
    return [_widened(k, wide) if any(o in wide for o in k.outputs) else k for k in kernels]


def _widened(kern: Kernel, wide: Mapping[str, tuple[int, ...]]) -> Kernel:
    new = {b.name: Buffer(b.name, wide[value], b.dtype, b.scope)
           for value, b in zip(kern.args, kern.func.params) if value in wide}

    def expr(e: Expr) -> Expr:
        return map_expr(e, lambda x: Load(new[x.source.name], x.indices)
                        if isinstance(x, Load) and x.source.name in new else None)

    def stmt(s: Stmt) -> Stmt | None:
        if isinstance(s, Store) and s.buffer.name in new:
            return Store(new[s.buffer.name], s.indices, s.value)
        return None

    f = kern.func
    body = map_stmt(map_exprs(f.body, expr), stmt)
    params = tuple(new.get(b.name, b) for b in f.params)
    return replace(kern, func=PrimFunc(f.name, params, body, dict(f.attrs)))

"""In-place analysis of a kernel: which input buffers an output may overwrite.

An output may take the memory of an input when the kernel writes each output element once,
in one store whose value is the only place that reads that input, and reads it only at the
element being written (`out[i] = f(in[i], ...)`). Then every read of an input element comes
before the write over it, whatever order the loops run in, vector lanes included. Elementwise
kernels and conv/matmul epilogues that read a residual qualify.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepc.ir.affine import affine
from deepc.ir.expr import INDEX, Const, Expr, Load, Var
from deepc.ir.loop import Buffer, For, IfThenElse, PrimFunc, Stmt, Store, stmt_children
from deepc.ir.rewrite import substitute
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize


@dataclass
class _Access:
    stores: dict[str, list[tuple[Store, tuple[For, ...]]]] = field(default_factory=dict)
    loads: dict[str, int] = field(default_factory=dict)  # every load of a buffer, counted


def inplace_pairs(func: PrimFunc) -> list[tuple[int, int]]:
    """(input, output) parameter positions where the output may overwrite the input (the
    outputs are the parameters the function stores to)."""
    acc = _Access()
    _collect(func.body, (), acc)
    pairs = []
    for o, out in enumerate(func.params):
        stores = acc.stores.get(out.name, [])
        if len(stores) != 1 or acc.loads.get(out.name):
            continue
        store, loops = stores[0]
        if not _writes_once(out, store.indices, loops):
            continue
        written = _point(out, store.indices, loops)
        for i, src in enumerate(func.params):
            if (i == o or src.name in acc.stores or not acc.loads.get(src.name)
                    or src.shape != out.shape or itemsize(src.dtype) != itemsize(out.dtype)):
                continue
            reads = [x for x in walk(store.value) if isinstance(x, Load) and x.source == src]
            if len(reads) == acc.loads[src.name] and all(
                    _point(src, r.indices, loops) == written for r in reads):
                pairs.append((i, o))
    return pairs


def _collect(s: Stmt, loops: tuple[For, ...], acc: _Access) -> None:
    exprs: list[Expr] = []
    if isinstance(s, Store):
        acc.stores.setdefault(s.buffer.name, []).append((s, loops))
        exprs = [*s.indices, s.value]
    elif isinstance(s, IfThenElse):
        exprs = [s.cond]
    for e in exprs:
        for x in walk(e):
            if isinstance(x, Load) and isinstance(x.source, Buffer):
                acc.loads[x.source.name] = acc.loads.get(x.source.name, 0) + 1
    inner = (*loops, s) if isinstance(s, For) else loops
    for child in stmt_children(s):
        _collect(child, inner, acc)


def _point(buf: Buffer, indices: tuple[Expr, ...], loops: tuple[For, ...]) -> tuple[object, ...]:
    """The element an access names, comparable between buffers of one shape: each index
    in affine form, with loop variables of extent 1 read as 0, and axes of extent 1 as 0
    (the only index in bounds there, however a schedule wrote it)."""
    ones = {loop.var: Const(0, INDEX) for loop in loops if loop.extent == 1}
    point: list[object] = []
    for idx, n in zip(indices, buf.shape):
        if n == 1:
            point.append(())
            continue
        form = affine(substitute(idx, ones))
        point.append((form.const, frozenset(form.terms)))
    return tuple(point)


def _writes_once(buf: Buffer, indices: tuple[Expr, ...], loops: tuple[For, ...]) -> bool:
    """Whether the store is outside every loop that leaves its indices unchanged (such as a
    reduction loop): the loops that lowering and schedules build over an output's
    elements visit each element once, so the store then writes each element once."""
    used = {x for i, n in zip(indices, buf.shape) if n > 1 for x in walk(i) if isinstance(x, Var)}
    return all(loop.extent == 1 or loop.var in used for loop in loops)

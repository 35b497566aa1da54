"""Row loops of a GEMM nest merged into one before it is tiled: the tokens of a [1, 7, 7, C]
activation are 49 rows of one matrix, not 7 matrices of 7 rows.

    for i1 in 0..7 { for i2 in 0..7 { for j { C[i1, i2, j] = sum_k A[i1, i2, k] B[k, j] } } }
merged ->
    for i1_i2 in 0..49 { for j { C[i1_i2, j] = sum_k A[i1_i2, k] B[k, j] } }

Held apart, the register tile's rows stop at 7 and the B panel is read once per i1 (swin's
last stage streamed its 9 MiB weights 7 times per MLP layer, unpacked); merged, the rows tile
49 rows and one packed panel serves them all. Two loops merge only where every access stays
affine in the merged loop (row-major neighbours in A and C) and the B operand, which moves
with the innermost loop, reads neither.
"""

from __future__ import annotations

from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Load, Var
from deepc.ir.loop import Allocate, For, PrimFunc, Store, find_loop, walk_stmts
from deepc.ir.tensor import walk
from deepc.schedule import primitives
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_reduction import update_stores


def merge_rows(f: PrimFunc, chain: list[For], machine: CpuMachine
               ) -> tuple[PrimFunc, list[tuple[str, str]]]:
    """`f` with the row loops of the perfect nest `chain` merged pairwise, outermost first,
    and the fuse steps that did it; unchanged where the nest is not a GEMM (one accumulator,
    one reduction loop) or no two neighbouring row loops merge cleanly, and where the B
    panels alone would not give each core one (threads split a packed GEMM by its panels, so
    a merged row loop leaves them fewer chunks: 384 columns make 6 panels of 64)."""
    alloc = chain[-1].body
    if not (isinstance(alloc, Allocate) and alloc.buffer.scope == "local"
            and alloc.buffer.shape == (1,)):
        return f, []
    panel = machine.lanes(alloc.buffer.dtype) * machine.row_vectors()
    if chain[-1].extent // panel < machine.cores:
        return f, []
    if sum(isinstance(s, For) for s in walk_stmts(alloc.body)) != 1:
        return f, []
    inner = chain[-1].var
    # the B operand: what the accumulator updates read along the columns (an epilogue's
    # residual moves with the rows too, and merges with them)
    moving = {v for s in update_stores(alloc) for ld in walk(s.value) if isinstance(ld, Load)
              and ld.source.scope == "global" and inner in _vars(ld) for v in _vars(ld)}
    rows = [c.var.name for c in chain[:-1] if c.extent >= 2 and c.var not in moving]
    steps: list[tuple[str, str]] = []
    outer = rows[0] if rows else None
    for name in rows[1:]:
        if outer is not None and _neighbours(f, outer, name):
            merged = primitives.fuse(f, outer, name)
            if _affine_accesses(find_loop(merged.body, f"{outer}_{name}")):
                steps.append((outer, name))
                f, outer = merged, f"{outer}_{name}"
                continue
        outer = name
    return f, steps


def _neighbours(f: PrimFunc, outer: str, inner: str) -> bool:
    loop = find_loop(f.body, outer)
    return isinstance(loop.body, For) and loop.body.var.name == inner


def _affine_accesses(loop: For) -> bool:
    """Whether every global access offset in `loop` is a plain sum of loop variables times
    constants (no div or mod of a merged loop left)."""
    for s in walk_stmts(loop):
        if not isinstance(s, Store):
            continue
        accesses = [(s.buffer, s.indices)] if s.buffer.scope == "global" else []
        accesses += [(n.source, n.indices) for n in walk(s.value)
                     if isinstance(n, Load) and n.source.scope == "global"]
        for buf, indices in accesses:
            offset = affine(flat_offset(buf.shape, indices))
            if any(not isinstance(t, Var) for t, _ in offset.terms):
                return False
    return True


def _vars(load: Load) -> set[Var]:
    return {x for i in load.indices for x in walk(i) if isinstance(x, Var)}


__all__ = ["merge_rows"]

"""Register tiling of reductions: one accumulator per point of a tile of output loops.

    for i_i in 0..4 {                          alloc acc[4, 16] local
      for j_i in 0..16 {                       for i_i, j_i: acc[i_i, j_i] = 0
        alloc acc[1] local            ->       for k { for i_i { for j_i {
        acc[0] = 0                                 acc[i_i, j_i] += A[.., k] * B[k, ..] } } }
        for k { acc[0] += A[..] * B[..] }      for i_i, j_i: C[..] = acc[i_i, j_i]
        C[..] = acc[0] } }

With the tile loops unrolled and vectorized, the accumulators live in registers and every
step of the reduction loop does a tile of multiply-adds on loaded operands: the shape of a
GEMM micro-kernel.
"""

from __future__ import annotations

from deepc.ir.expr import Expr, Load, binary
from deepc.ir.loop import Allocate, Buffer, For, IfThenElse, PrimFunc, Seq, Stmt, find_loop
from deepc.schedule.primitives import _replace_loop
from deepc.schedule.stmt_rewrite import map_stmt, rewrite_loads


def _wrap(body: Stmt, loops: list[For]) -> Stmt:
    for loop in reversed(loops):
        body = For(loop.var, loop.extent, loop.kind, body, loop.thread_axis)
    return body


def _wrap_innermost(s: Stmt, loops: list[For]) -> Stmt:
    if isinstance(s, For):
        return For(s.var, s.extent, s.kind, _wrap_innermost(s.body, loops), s.thread_axis)
    return _wrap(s, loops)


def _guard(s: Stmt, cond: Expr) -> Stmt:
    """`if cond` around the innermost body of a loop nest (or around a statement)."""
    if isinstance(s, For):
        return For(s.var, s.extent, s.kind, _guard(s.body, cond), s.thread_axis)
    return IfThenElse(cond, s)


def tile_reduction(f: PrimFunc, *tile: str) -> PrimFunc:
    """Give each iteration of the `tile` loops (perfectly nested, outermost first, directly
    around a reduction's accumulator) its own accumulator, and move the reduction loops
    outside the tile (see the module docstring)."""
    find_loop(f.body, tile[0])

    def fn(outer: For) -> Stmt:
        chain = [outer]
        while len(chain) < len(tile):
            nxt = chain[-1].body
            if not isinstance(nxt, For) or nxt.var.name != tile[len(chain)]:
                raise ValueError(f"tile_reduction: loops {tile} are not one perfect nest")
            chain.append(nxt)
        alloc, guard = chain[-1].body, None
        while isinstance(alloc, IfThenElse) and alloc.otherwise is None:
            # splits' bounds tests: kept, combined, around each part
            guard = alloc.cond if guard is None else binary("and", guard, alloc.cond)
            alloc = alloc.then
        if not (isinstance(alloc, Allocate) and alloc.buffer.shape == (1,)
                and alloc.buffer.scope == "local"):
            raise ValueError(f"tile_reduction: {tile[-1]} does not directly hold an accumulator")
        old = alloc.buffer
        acc = Buffer(old.name, tuple(c.extent for c in chain), old.dtype, old.scope)
        index = tuple(c.var for c in chain)

        def retarget(e: Expr) -> Expr | None:
            return Load(acc, index) if isinstance(e, Load) and e.source == old else None

        def restore(s: Stmt) -> Stmt | None:
            from deepc.ir.loop import Store

            if isinstance(s, Store) and s.buffer == old:
                return Store(acc, index, s.value)
            return None

        body = map_stmt(rewrite_loads(alloc.body, retarget), restore)
        parts = body.stmts if isinstance(body, Seq) else (body,)
        if guard is not None:
            parts = tuple(_guard(p, guard) for p in parts)
        new = [_wrap_innermost(p, chain) if isinstance(p, For) else _wrap(p, chain)
               for p in parts]
        return Allocate(acc, Seq(tuple(new)))

    return _replace_loop(f, tile[0], fn)

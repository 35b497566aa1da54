"""Serial loop nests for ops whose compute is hand-written loop IR (extern stages): scatters,
scans, top-k."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deepc.ir import expr as E
from deepc.ir.loop import For, ForKind, Seq, Stmt


def loop_nest(shape: Sequence[int], prefix: str, body: Callable[[tuple[E.Var, ...]], Stmt]
              ) -> Stmt:
    """Serial loops over `shape` (outermost first, variables `prefix0`, `prefix1`...) around
    `body(loop variables)`: the skeleton of hand-written (extern) loop nests."""
    vs = tuple(E.Var(f"{prefix}{d}") for d in range(len(shape)))
    stmt = body(vs)
    for v, n in reversed(list(zip(vs, shape))):
        stmt = For(v, n, ForKind.SERIAL, stmt)
    return stmt


def row_loops(rows: Sequence[int], prefix: str, body: Callable[[tuple[E.Var, ...]], Stmt]
              ) -> Stmt:
    """Loops over independent rows (a schedule may spread them over threads) around
    `body(row variables)`, which holds loops that must run in order (a scan, updates that
    may hit one element twice). Default schedules spread and vectorize perfect loop nests,
    so the body is kept from continuing one and a single row still gets its loop: until the
    loop IR can mark a loop as ordered, this keeps schedules off the ordered loops."""

    def guarded(vs: tuple[E.Var, ...]) -> Stmt:
        stmt = body(vs if rows else ())
        return Seq((stmt,)) if isinstance(stmt, For) else stmt

    return loop_nest(tuple(rows) or (1,), prefix, guarded)

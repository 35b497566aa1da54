"""`version_rows`: a register tile whose row split left a bounds guard on every update ->
the same tile twice, unguarded where all its rows are in bounds and guarded at the edge.

The guard on the rows is invariant in the reduction loop, yet a test inside it leaves the
accumulators live across branches: LLVM then spills some of them on every step (a 197-row
GEMM in 6-row tiles ran its full tiles through the spilling path at 87 GFLOP/s where the
same nest without the test reaches 190). Testing once per tile keeps the inner loop
straight.

    for i_o in 0..33 { alloc acc[6, 64]
      for k { unrolled for i_i in 0..6 { if i_o*6 + i_i < 197 { acc[i_i, :] += .. } } }
      unrolled for i_i in 0..6 { if i_o*6 + i_i < 197 { C[i_o*6 + i_i, :] = acc[i_i, :] } } }
version_rows(i_o, i_i) ->
    for i_o in 0..33 {
      if i_o*6 + 5 < 197 { (the body above without the tests on i_i) }
      else { (the body above) } }
"""

from __future__ import annotations

from dataclasses import replace

from deepc.ir.expr import Expr, binary
from deepc.ir.loop import For, IfThenElse, PrimFunc, Stmt, find_loop, walk_stmts
from deepc.schedule.lane_guard import at_edge_lane, conjuncts, mentions, strip_guards
from deepc.schedule.stmt_rewrite import map_stmt


def version_rows(f: PrimFunc, outer: str, rows: str) -> PrimFunc:
    """Version the body of every loop named `outer` on whether the guards on the rows of
    its inner loop `rows` hold for the whole tile."""
    find_loop(f.body, outer)  # raises KeyError naming the loop when absent

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name == outer:
            return _below_nest(s, rows)
        return None

    return f.with_body(map_stmt(f.body, visit))


def _below_nest(loop: For, rows: str) -> For:
    """The loop with its tile versioned below the loops nested perfectly inside it (which
    later steps may still fuse or reorder), as a split places its guard."""
    if isinstance(loop.body, For) and loop.body.var.name != rows:
        return replace(loop, body=_below_nest(loop.body, rows))
    body = _versioned(loop.body, rows)
    return loop if body is None else replace(loop, body=body)


def _versioned(body: Stmt, rows: str) -> Stmt | None:
    loops = [x for x in walk_stmts(body) if isinstance(x, For) and x.var.name == rows]
    if not loops or any(x.extent != loops[0].extent for x in loops):
        return None
    row = loops[0]
    edges: list[Expr] = []
    for g in walk_stmts(body):
        if not isinstance(g, IfThenElse):
            continue
        for c in conjuncts(g.cond):
            if mentions(c, row.var):
                edge = at_edge_lane(c, row)
                if edge is None:
                    return None  # a test that the last row does not decide for all
                if edge not in edges:  # the split's one guard, repeated per statement
                    edges.append(edge)
    if not edges:
        return None
    whole = edges[0]
    for edge in edges[1:]:
        whole = binary("and", whole, edge)
    bare = map_stmt(body, lambda s: strip_guards(s, row.var))
    return IfThenElse(whole, bare, body)


__all__ = ["version_rows"]

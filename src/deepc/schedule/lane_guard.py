"""`unguard_lanes`: a vector loop whose split left a bounds guard on the lanes -> the same loop
without that guard where the lanes past the end only touch the kernel's own scratch, and
versioned (vector when the whole tile is in bounds, guarded lanes otherwise) where they
reach an operand.

A guard on the lane variable makes a vector loop scalar (the lanes would diverge). A packed
GEMM whose columns do not divide into registers (attention's 197 tokens) keeps full vectors
this way: its B panel is zero-filled past the end (see packing), so the accumulator lanes
past the last column compute zeros that nothing stores.

    for j_o in 0..13 { alloc acc[16]; alloc Bp[K, 16]
      for k { vectorized for j_i in 0..16 { if j_o*16 + j_i < 197 { acc[j_i] += a * Bp[k, j_i] } } }
      vectorized for j_i in 0..16 { if j_o*16 + j_i < 197 { C[j_o*16 + j_i] = acc[j_i] } } }
unguard_lanes(j_i) ->
    for j_o in 0..13 { alloc acc[16]; alloc Bp[K, 16]
      for k { vectorized for j_i in 0..16 { acc[j_i] += a * Bp[k, j_i] } }
      if j_o*16 + 15 < 197 { vectorized for j_i in 0..16 { C[j_o*16 + j_i] = acc[j_i] } }
      else { for j_i in 0..16 { if j_o*16 + j_i < 197 { C[j_o*16 + j_i] = acc[j_i] } } } }
"""

from __future__ import annotations

from dataclasses import replace

from deepc.ir.affine import affine
from deepc.ir.expr import INDEX, Binary, Const, Expr, Load, Var, binary
from deepc.ir.loop import (
    Allocate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Stmt,
    Store,
    find_loop,
    walk_stmts,
)
from deepc.ir.rewrite import substitute
from deepc.ir.tensor import walk
from deepc.schedule.stmt_rewrite import map_stmt


def unguard_lanes(f: PrimFunc, loop: str) -> PrimFunc:
    """Drop or version the bounds guards on the lanes of every loop named `loop`."""
    find_loop(f.body, loop)  # raises KeyError naming the loop when absent
    scratch = {s.buffer.name: s.buffer.shape for s in walk_stmts(f.body)
               if isinstance(s, Allocate)}

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name == loop:
            return unguard_loop(s, scratch)
        return None

    return f.with_body(map_stmt(f.body, visit))


def unguard_loop(loop: For, scratch: dict[str, tuple[int, ...]]) -> Stmt:
    """One loop's guards dropped or versioned; `scratch` maps the buffers that the kernel
    allocates (a lane past the end may write them) to their shapes."""
    v = loop.var
    if loop.kind is not ForKind.VECTORIZED:  # a serial loop (the edge's version) keeps them
        return loop
    guards = [x for x in walk_stmts(loop.body)
              if isinstance(x, IfThenElse) and any(mentions(c, v) for c in conjuncts(x.cond))]
    if not guards:
        return loop
    bare = replace(loop, body=map_stmt(loop.body, lambda s: strip_guards(s, v)))
    if all(g.otherwise is None and _private(g, loop, scratch) for g in guards):
        return bare
    whole: Expr | None = None
    for g in guards:
        for c in conjuncts(g.cond):
            if mentions(c, v):
                edge = at_edge_lane(c, loop)
                if edge is None:
                    return loop
                whole = edge if whole is None else binary("and", whole, edge)
    return IfThenElse(whole, bare, replace(loop, kind=ForKind.SERIAL))  # type: ignore[arg-type]


def conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Binary) and e.op == "and":
        return conjuncts(e.a) + conjuncts(e.b)
    return [e]


def strip_guards(s: Stmt, v: Var) -> Stmt | None:
    """A guard's test without its conditions on the lanes (all of them true)."""
    if not isinstance(s, IfThenElse):
        return None
    conds = conjuncts(s.cond)
    rest = [c for c in conds if not mentions(c, v)]
    if len(rest) == len(conds):
        return None
    if not rest:
        return s.then
    kept = rest[0]
    for c in rest[1:]:
        kept = binary("and", kept, c)
    return IfThenElse(kept, s.then, s.otherwise)


def _private(guard: IfThenElse, loop: For, scratch: dict[str, tuple[int, ...]]) -> bool:
    """Whether every store under `guard` writes the kernel's own scratch, every access that
    moves with the lanes is one of its buffers, indexed by the lane itself within bounds,
    and no other access depends on what the lane test does (its outer loop): then a lane
    past the operand's end reads and writes nothing outside the kernel."""
    v = loop.var
    tested = {n for c in conjuncts(guard.cond) if mentions(c, v)
              for n in walk(c) if isinstance(n, Var)}
    for x in walk_stmts(guard.then):
        if not isinstance(x, Store | IfThenElse):
            continue
        if isinstance(x, Store) and x.buffer.name not in scratch:
            return False
        exprs = [*x.indices, x.value] if isinstance(x, Store) else [x.cond]
        accesses = [(n.source.name, n.indices) for e in exprs for n in walk(e)
                    if isinstance(n, Load)]
        if isinstance(x, Store):
            accesses.append((x.buffer.name, x.indices))
        for name, indices in accesses:
            moving = [d for d, i in enumerate(indices) if mentions(i, v)]
            if name not in scratch and any(mentions(i, t) for i in indices for t in tested):
                return False
            if not moving:
                continue
            for d in moving:
                a = affine(indices[d])
                if a.terms != ((v, 1),) or a.const or scratch[name][d] < loop.extent:
                    return False
    return True


def at_edge_lane(cond: Expr, loop: For) -> Expr | None:
    """A bound on the lanes (`e < n`, `e >= n` with e growing along them) at the lane where it
    is tightest, so that it holds there only if it holds at every lane; else None."""
    v = loop.var
    if not (isinstance(cond, Binary) and cond.op in ("lt", "le", "ge", "gt")
            and not mentions(cond.b, v)):
        return None
    terms = affine(cond.a).terms
    if any(t != v and mentions(t, v) for t, _ in terms) or dict(terms).get(v, 0) <= 0:
        return None
    lane = loop.extent - 1 if cond.op in ("lt", "le") else 0
    return substitute(cond, {v: Const(lane, INDEX)})


def mentions(e: Expr, v: Var) -> bool:
    return any(isinstance(n, Var) and n == v for n in walk(e))


__all__ = ["at_edge_lane", "conjuncts", "mentions", "strip_guards", "unguard_lanes",
           "unguard_loop"]

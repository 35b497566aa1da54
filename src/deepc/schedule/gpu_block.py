"""One-block GPU schedule for stages without an outer parallel loop (e.g. recurrent cells).

The block's threads walk the stage together: a loop whose iterations provably touch disjoint
elements is spread over the threads (split by the block size, inner part bound to
threadIdx.x); a loop that is not, but holds such loops, runs on every thread alike; any other
statement runs on thread 0. A barrier follows each of these pieces. Local buffers used by
more than one piece move to shared memory; the rest stay private to each thread.

    for t in 0..32 { for row in 0..1024 { g[row] = ... h[k] ... }  for j in 0..256 { h[j] = ... } }
->
    for t in 0..32 { for row_o in 0..1 { threadIdx.x for row_i in 0..1024 { ... } }
                     barrier
                     for j_o in 0..1 { threadIdx.x for j_i in 0..1024 { if j < 256 {...} } }
                     barrier }
"""

from __future__ import annotations

from deepc.ir.affine import affine, bounds, flat_offset
from deepc.ir.expr import INDEX, Const, Expr, Load, Var
from deepc.ir.loop import (
    Allocate,
    Buffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    loops,
    seq,
    walk_stmts,
)
from deepc.ir.rewrite import map_expr
from deepc.ir.tensor import walk
from deepc.schedule.primitives import split
from deepc.schedule.stmt_rewrite import map_stmt, substitute_stmt

BARRIER = Evaluate("barrier")


def _tid() -> Var:
    return Var("deepc_tid")


def _accesses(s: Stmt) -> tuple[list[Store], list[Load]]:
    stores, loads = [], []
    for x in walk_stmts(s):
        exprs: list[Expr] = []
        if isinstance(x, Store):
            stores.append(x)
            exprs = [*x.indices, x.value]
        elif isinstance(x, IfThenElse):
            exprs = [x.cond]
        loads += [e for root in exprs for e in walk(root) if isinstance(e, Load)]
    return stores, loads


def _ranges(s: For) -> dict[Var, int]:
    return {lp.var: lp.extent for lp in loops(s)}


def _span(buf: Buffer, idx: tuple[Expr, ...], ranges: dict[Var, int]) -> tuple | None:
    try:
        lo, span = bounds(affine(flat_offset(buf.shape, idx)), ranges)
    except (TypeError, ValueError, KeyError):
        return None
    if any(isinstance(v, Var) and v in ranges for t, _ in lo.terms for v in walk(t)):
        return None  # a non-affine term moves with the loops: no interval to compare
    return frozenset(lo.terms), lo.const, lo.const + span


def _independent(s: For, private: set[str]) -> bool:
    """Each iteration stores elements no other iteration touches."""
    stores, loads = _accesses(s.body)
    shared_stores = [x for x in stores if x.buffer.name not in private]
    ranges = _ranges(s)
    for st in shared_stores:
        if not any(any(isinstance(v, Var) and v == s.var for v in walk(i)) for i in st.indices):
            return False
        for other in [*shared_stores, *loads]:
            buf = other.buffer if isinstance(other, Store) else other.source
            if buf.name != st.buffer.name or tuple(other.indices) == tuple(st.indices):
                continue
            a, b = _span(buf, st.indices, ranges), _span(buf, tuple(other.indices), ranges)
            if a is None or b is None or a[0] != b[0] or not (a[2] <= b[1] or b[2] <= a[1]):
                return False
    return True


def _pieces_using(s: Stmt) -> set[str]:
    stores, loads = _accesses(s)
    return {x.buffer.name for x in stores} | {x.source.name for x in loads}


def block_schedule(func: PrimFunc, threads: int, shared_budget: int) -> PrimFunc | None:
    """The stage rewritten for one block of `threads` threads, or None when nothing in it
    runs in parallel or its shared buffers do not fit."""
    body, allocs = func.body, []
    while True:  # local buffers around the whole stage, possibly under a loop of extent 1
        if isinstance(body, Allocate) and body.buffer.scope == "local":
            allocs.append(body.buffer)
            body = body.body
        elif isinstance(body, For) and body.extent == 1:
            body = substitute_stmt(body.body, {body.var: _zero()})
        else:
            break
    pieces = list(body.stmts) if isinstance(body, Seq) else [body]
    # a local buffer stays private to each thread when one piece alone uses it; which loops
    # are pieces depends on which buffers are private: shrink from "all" to a fixed point
    private = {b.name for b in allocs}
    while True:
        users: dict[str, int] = {}
        for p in _flatten(pieces, private):
            for name in _pieces_using(p):
                users[name] = users.get(name, 0) + 1
        fewer = {n for n in private if users.get(n, 0) <= 1}
        if fewer == private:
            break
        private = fewer
    shared = [b for b in allocs if b.name not in private]
    if sum(b.size * 4 for b in shared) > shared_budget:
        return None
    state = {"parallel": 0}
    new = seq(*(_piece(p, private, threads, state) for p in pieces))
    if not state["parallel"]:
        return None
    for b in reversed(allocs):
        scope = "local" if b.name in private else "shared"
        new = Allocate(_rescope(b, scope), new)
    out = func.with_body(new)
    renamed = {b.name for b in shared}
    return _retarget(out, {b.name: _rescope(b, "shared") for b in allocs if b.name in renamed})


def block_threads(func: PrimFunc, threads: int, shared_budget: int) -> PrimFunc:
    """`block_schedule` as a schedule primitive (its knobs: the block's threads and the shared
    memory it may use); refuses a stage it cannot spread over one block."""
    out = block_schedule(func, threads, shared_budget)
    if out is None:
        raise ValueError(f"block_threads: nothing in {func.name} runs in parallel over "
                         f"{threads} threads within {shared_budget} bytes of shared memory")
    return out


def _flatten(pieces: list[Stmt], private: set[str]) -> list[Stmt]:
    """The pieces that will be separated by barriers (recursing into sequential loops)."""
    out: list[Stmt] = []
    for p in pieces:
        if isinstance(p, For) and not _independent(p, private) and any(
                isinstance(x, For) for x in walk_stmts(p.body)):
            body = p.body.stmts if isinstance(p.body, Seq) else [p.body]
            out += _flatten(list(body), private)
        else:
            out.append(p)
    return out


def _piece(p: Stmt, private: set[str], threads: int, state: dict) -> Stmt:
    if isinstance(p, For) and _independent(p, private):
        state["parallel"] += 1
        f = split(PrimFunc("p", (), p), p.var.name, threads).body
        assert isinstance(f, For) and isinstance(f.body, For)
        inner = For(f.body.var, threads, ForKind.GPU_THREAD, f.body.body, "x")
        return seq(For(f.var, f.extent, ForKind.SERIAL, inner), BARRIER)
    if isinstance(p, For) and any(isinstance(x, For) for x in walk_stmts(p.body)):
        body = p.body.stmts if isinstance(p.body, Seq) else [p.body]
        inner_seq = seq(*(_piece(b, private, threads, state) for b in body))
        return For(p.var, p.extent, p.kind, inner_seq, p.thread_axis)
    # one thread does it; the barrier publishes its stores
    single = For(_tid(), threads, ForKind.GPU_THREAD, IfThenElse(_tid().eq(0), p), "x")
    return seq(single, BARRIER)


def _zero() -> Expr:
    return Const(0, INDEX)


def _rescope(b: Buffer, scope: str) -> Buffer:
    return Buffer(b.name, b.shape, b.dtype, scope)


def _retarget(func: PrimFunc, bufs: dict[str, Buffer]) -> PrimFunc:
    """Point every store and load of the renamed buffers at their new (shared) scope."""

    def fix_expr(e: Expr) -> Expr | None:
        if isinstance(e, Load) and isinstance(e.source, Buffer) and e.source.name in bufs:
            return Load(bufs[e.source.name], e.indices)
        return None

    def fix(s: Stmt) -> Stmt | None:
        if isinstance(s, Store):
            b = bufs.get(s.buffer.name, s.buffer)
            return Store(b, tuple(map_expr(i, fix_expr) for i in s.indices),
                         map_expr(s.value, fix_expr))
        if isinstance(s, IfThenElse):
            return IfThenElse(map_expr(s.cond, fix_expr), map_stmt(s.then, fix),
                              map_stmt(s.otherwise, fix) if s.otherwise else None)
        return None

    return func.with_body(map_stmt(func.body, fix))

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

from deepc.ir.expr import INDEX, Binary, Const, Expr, Load, Var, binary
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    find_loop,
    walk_stmts,
)
from deepc.ir.rewrite import substitute
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


def rfactor(f: PrimFunc, loop: str, lanes: int) -> PrimFunc:
    """Split the reduction loop `loop` (its body one accumulator update) into `lanes` partial
    accumulators that a vector loop updates, combined once after the loop: a reduction along
    the contiguous axis runs as vectors without gathering across rows.

        alloc acc[1] local                    alloc acc[1] local; alloc acc_v[L] local
        acc[0] = init                         acc[0] = init; vectorized for l { acc_v[l] = init }
        for r in 0..R {                 ->    for r_o in 0..R/L { vectorized for l {
          acc[0] = acc[0] op f(r) }             acc_v[l] = acc_v[l] op f(r_o*L + l) } }
        out = g(acc[0])                       for t in 0..R%L { acc[0] = acc[0] op f(R/L*L + t) }
                                              acc[0] = acc[0] op (tree of acc_v)
                                              out = g(acc[0])
    """
    target = find_loop(f.body, loop)
    update = target.body
    if not (isinstance(update, Store) and isinstance(update.value, Binary)
            and isinstance(update.value.a, Load) and update.value.a.source == update.buffer
            and isinstance(target.extent, int) and target.extent >= lanes >= 2):
        raise ValueError(f"rfactor: {loop} is not a reduction loop of {lanes} or more steps"
                         " around one accumulator update")
    acc, op, term = update.buffer, update.value.op, update.value.b
    vacc = Buffer(f"{acc.name}_v", (lanes,), acc.dtype, "local")
    lane, outer, tail = (Var(f"{loop}_l", INDEX), Var(f"{loop}_o", INDEX),
                         Var(f"{loop}_t", INDEX))
    whole = target.extent // lanes * lanes

    def step(buf: Buffer, index: Expr, r: Expr) -> Store:
        value = substitute(term, {target.var: r})
        return Store(buf, (index,), binary(op, Load(buf, (index,)), value))

    zero = Const(0, INDEX)
    parts: list[Stmt] = [For(outer, target.extent // lanes, ForKind.SERIAL, For(
        lane, lanes, ForKind.VECTORIZED, step(vacc, lane, outer * lanes + lane)))]
    if target.extent % lanes:
        parts.append(For(tail, target.extent % lanes, ForKind.SERIAL,
                         step(acc, zero, tail + whole)))
    found: list[Store] = []

    def replace_loop(s: Stmt) -> Stmt | None:
        return Seq(tuple(parts)) if isinstance(s, For) and s.var == target.var else None

    def holder(s: Stmt) -> Stmt | None:
        if not (isinstance(s, Allocate) and s.buffer == acc and isinstance(s.body, Seq)):
            return None
        init, *rest = s.body.stmts
        if not (isinstance(init, Store) and init.buffer == acc) or not rest or not any(
                isinstance(x, For) and x.var == target.var for x in walk_stmts(rest[0])):
            return None
        found.append(init)
        vinit = For(lane, lanes, ForKind.VECTORIZED, Store(vacc, (lane,), init.value))
        body = Seq((init, vinit, map_stmt(rest[0], replace_loop), *_combine(acc, vacc, op),
                    *rest[1:]))
        return Allocate(acc, Allocate(vacc, body), s.data)

    out = f.with_body(map_stmt(f.body, holder))
    if not found:
        raise ValueError(f"rfactor: no accumulator initialised right before {loop}'s nest")
    return out


def _combine(acc: Buffer, vacc: Buffer, op: str) -> list[Stmt]:
    """acc[0] op= every lane of vacc: halving vector steps (vacc[l] op= vacc[l + h]) while the
    width is even, then the lanes left one by one."""
    steps: list[Stmt] = []
    width = vacc.shape[0]
    zero = Const(0, INDEX)
    while width % 2 == 0:
        width //= 2
        lane = Var(f"{vacc.name}_h{width}", INDEX)
        upper = Load(vacc, (lane + width,))
        steps.append(For(lane, width, ForKind.VECTORIZED if width > 1 else ForKind.SERIAL,
                         Store(vacc, (lane,), binary(op, Load(vacc, (lane,)), upper))))
    lane = Var(f"{vacc.name}_c", INDEX)
    steps.append(For(lane, width, ForKind.SERIAL,
                     Store(acc, (zero,), binary(op, Load(acc, (zero,)), Load(vacc, (lane,))))))
    return steps

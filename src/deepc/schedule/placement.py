"""Schedule primitives that move computation and data: compute_at, compute_inline,
cache_read and cache_write. They rely on the affine region a loop body touches."""

from __future__ import annotations

from deepc.ir.affine import Affine, affine, bounds
from deepc.ir.expr import INDEX, Const, Expr, Load, Var, binary
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
    seq,
    walk_stmts,
)
from deepc.ir.rewrite import substitute
from deepc.ir.tensor import walk
from deepc.schedule.stmt_rewrite import map_exprs, map_stmt, rewrite_loads, substitute_stmt

Region = list[tuple[Affine, int]]  # per dimension: start (affine in outer terms), extent


def _accesses(s: Stmt, buf: Buffer, loads: bool = True, stores: bool = True) -> list[tuple]:
    found: list[tuple[Expr, ...]] = []
    for x in walk_stmts(s):
        if stores and isinstance(x, Store) and x.buffer == buf:
            found.append(x.indices)
        exprs = [*x.indices, x.value] if isinstance(x, Store) else (
            [x.cond] if isinstance(x, IfThenElse) else [])
        if loads:
            for e in exprs:
                found += [n.indices for n in walk(e) if isinstance(n, Load) and n.source == buf]
    return found


def _inner_ranges(s: Stmt) -> dict[Var, int]:
    return {x.var: x.extent for x in walk_stmts(s) if isinstance(x, For)}


def region(s: Stmt, buf: Buffer, loads: bool = True, stores: bool = True) -> Region:
    """The box of `buf` that `s` touches, relative to variables bound outside `s`."""
    accesses = _accesses(s, buf, loads, stores)
    if not accesses:
        raise ValueError(f"{buf.name} is not accessed there")
    ranges = _inner_ranges(s)
    out: Region = []
    for d, dim in enumerate(buf.shape):
        boxes = [bounds(affine(idx[d]), ranges) for idx in accesses]
        base = boxes[0][0]
        lo, hi = 0, 0
        for start, span in boxes:
            shift = start.minus(base)
            if shift.terms:
                return [(Affine((), 0), n) for n in buf.shape]  # not comparable: whole buffer
            lo, hi = min(lo, shift.const), max(hi, shift.const + span)
        extent = min(hi - lo, dim)
        out.append((Affine(base.terms, base.const + lo), extent))
    return out


def _replace_loop_body(f: PrimFunc, loop: str, fn) -> PrimFunc:  # type: ignore[no-untyped-def]
    find_loop(f.body, loop)

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name == loop:
            return For(s.var, s.extent, s.kind, fn(s.body), s.thread_axis)
        return None

    return f.with_body(map_stmt(f.body, visit))


def _producer_nest(body: Stmt, buf: Buffer) -> For:
    """The top-level loop nest that writes `buf`."""
    for s in _top_level(body):
        if isinstance(s, For) and any(isinstance(x, Store) and x.buffer == buf
                                      for x in walk_stmts(s)):
            return s
    raise ValueError(f"no loop nest writes {buf.name}")


def _top_level(s: Stmt) -> list[Stmt]:
    if isinstance(s, Allocate):
        return _top_level(s.body)
    if isinstance(s, Seq):
        return [y for x in s.stmts for y in _top_level(x)]
    return [s]


def _remove(body: Stmt, target: Stmt) -> Stmt:
    """`body` without the top-level statement `target` (found by identity)."""
    if isinstance(body, Allocate):
        return Allocate(body.buffer, _remove(body.body, target))
    if isinstance(body, Seq):
        return seq(*(_remove(x, target) for x in body.stmts if x is not target)) \
            if any(x is not target for x in body.stmts) else Seq(())
    return body


def _buffer(f: PrimFunc, name: str) -> Buffer:
    for b in f.params:
        if b.name == name:
            return b
    for s in walk_stmts(f.body):
        if isinstance(s, Allocate) and s.buffer.name == name:
            return s.buffer
    raise KeyError(f"no buffer named {name!r}")


def _in_bounds(idx: list[Expr], shape: tuple[int, ...]) -> Expr | None:
    cond: Expr | None = None
    for e, n in zip(idx, shape):
        c = binary("and", binary("ge", e, Const(0, INDEX)), binary("lt", e, Const(n, INDEX)))
        cond = c if cond is None else binary("and", cond, c)
    return cond


def compute_at(f: PrimFunc, buffer: str, loop: str) -> PrimFunc:
    """Compute the part of a producer that one iteration of a consumer loop reads, inside it.

        for i { P[i] = f(i) }            for y { for x { if ... { P[y + x] = f(y + x) } }
        for y { C[y] = P[y] + P[y+1] }  ->        C[y] = P[y] + P[y+1] }   (x in 0..2)
    """
    buf = _buffer(f, buffer)
    nest = _producer_nest(f.body, buf)
    chain = [nest]
    while isinstance(chain[-1].body, For) and len(chain) < len(buf.shape):
        chain.append(chain[-1].body)
    store_idx = _accesses(nest, buf, loads=False)[0]
    if len(chain) != len(buf.shape) or any(i != c.var for i, c in zip(store_idx, chain)):
        raise ValueError(f"compute_at: {buffer}'s nest must loop over its own indices")
    inner = chain[-1].body
    consumer = find_loop(f.body, loop)
    reg = region(consumer.body, buf, stores=False)
    new_vars = [Var(f"{c.var.name}_at") for c in chain]
    idx = [binary("add", start.to_expr(), v) for (start, _), v in zip(reg, new_vars)]
    body = substitute_stmt(inner, dict(zip([c.var for c in chain], idx)))
    guard = _in_bounds(idx, buf.shape)
    body = IfThenElse(guard, body) if guard is not None else body
    for v, (_, ext) in reversed(list(zip(new_vars, reg))):
        body = For(v, ext, ForKind.SERIAL, body)
    f = f.with_body(_remove(f.body, nest))
    return _replace_loop_body(f, loop, lambda b: seq(body, b))


def compute_inline(f: PrimFunc, buffer: str) -> PrimFunc:
    """Replace loads of an intermediate buffer by the expression that computes it.

        for i { T[i] = A[i] * 2 }          for i { B[i] = A[i] * 2 + 1 }
        for i { B[i] = T[i] + 1 }    ->
    """
    buf = _buffer(f, buffer)
    nest = _producer_nest(f.body, buf)
    chain = [nest]
    while isinstance(chain[-1].body, For):
        chain.append(chain[-1].body)
    store = chain[-1].body
    if not isinstance(store, Store) or list(store.indices) != [c.var for c in chain]:
        raise ValueError(f"compute_inline: {buffer} must be a plain elementwise stage")
    axes = [c.var for c in chain]

    def repl(e: Expr) -> Expr | None:
        if isinstance(e, Load) and e.source == buf:
            return substitute(store.value, dict(zip(axes, e.indices)))
        return None

    body = rewrite_loads(_remove(f.body, nest), repl)

    def drop_alloc(s: Stmt) -> Stmt | None:
        return s.body if isinstance(s, Allocate) and s.buffer == buf else None

    return f.with_body(map_stmt(body, drop_alloc))


def _cache(f: PrimFunc, buffer: str, loop: str, scope: str, write: bool) -> PrimFunc:
    buf = _buffer(f, buffer)
    consumer = find_loop(f.body, loop)
    reg = region(consumer.body, buf, loads=True, stores=write)
    cache = Buffer(f"{buf.name}_{scope}", tuple(ext for _, ext in reg), buf.dtype, scope)
    starts = [start.to_expr() for start, _ in reg]

    def local(idx: tuple[Expr, ...]) -> tuple[Expr, ...]:
        return tuple(binary("sub", i, s) for i, s in zip(idx, starts))

    def redirect_load(e: Expr) -> Expr | None:
        if isinstance(e, Load) and e.source == buf:
            return Load(cache, local(e.indices))
        return None

    def redirect(s: Stmt) -> Stmt:
        s = rewrite_loads(s, redirect_load)
        if not write:
            return s
        return map_stmt(s, lambda x: Store(cache, local(x.indices), x.value)
                        if isinstance(x, Store) and x.buffer == buf else None)

    vars_ = [Var(f"{buf.name}_{scope}_i{d}") for d in range(len(buf.shape))]
    glob = [binary("add", s, v) for s, v in zip(starts, vars_)]
    copy: Stmt = (Store(buf, tuple(glob), Load(cache, tuple(vars_))) if write
                  else Store(cache, tuple(vars_), Load(buf, tuple(glob))))
    guard = _in_bounds(glob, buf.shape)
    copy = IfThenElse(guard, copy) if guard is not None else copy
    for v, (_, ext) in reversed(list(zip(vars_, reg))):
        copy = For(v, ext, ForKind.SERIAL, copy)

    def wrap(body: Stmt) -> Stmt:
        inner = seq(redirect(body), copy) if write else seq(copy, redirect(body))
        return Allocate(cache, inner)

    return _replace_loop_body(f, loop, wrap)


def cache_read(f: PrimFunc, buffer: str, loop: str, scope: str = "local") -> PrimFunc:
    """Copy the region of `buffer` one iteration of `loop` reads into a `scope` buffer first.

        for i { for k { C[i] += A[k] } }  ->  for i { alloc A_local[K]; for k { A_local[k] = A[k] }
                                                      for k { C[i] += A_local[k] } }
    """
    return _cache(f, buffer, loop, scope, write=False)


def cache_write(f: PrimFunc, buffer: str, loop: str, scope: str = "local") -> PrimFunc:
    """Accumulate one iteration's writes of `buffer` in a `scope` buffer, then copy them out.

        for i { for j { C[i, j] = ... } }  ->  for i { alloc C_local[J]
                                                       for j { C_local[j] = ... }
                                                       for j { C[i, j] = C_local[j] } }
    """
    return _cache(f, buffer, loop, scope, write=True)


__all__ = ["cache_read", "cache_write", "compute_at", "compute_inline", "map_exprs", "region"]

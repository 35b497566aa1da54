"""`pack`: copy the block of an operand that one iteration of a loop reads into a contiguous
scratch panel, with its dimensions reordered so that a chosen loop walks the panel's last
(contiguous) dimension. The GEMM schedule packs B panels with it (see cpu_gemm).

    for j_o { for i { for k { for j_i { C[i, j] += A[i, k] * B[j_o*64 + j_i, k] } } } }
pack(B, j_o, j_i) ->
    for j_o { alloc B_pack[K, 64]
              for p0 in 0..K { for p1 in 0..64 { B_pack[p0, p1] = B[j_o*64 + p1, p0] } }
              for i { for k { for j_i { C[i, j] += A[i, k] * B_pack[k, j_i] } } } }

Reads outside the operand (the last block of a tiled loop) fill the panel with zeros; the
copy runs as vectors wherever a panel lies inside the operand (lane_guard).
"""

from __future__ import annotations

from deepc.ir.affine import affine
from deepc.ir.expr import INDEX, Const, Expr, Load, Var, binary
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Stmt,
    Store,
    find_loop,
    seq,
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.schedule.lane_guard import unguard_loop
from deepc.schedule.placement import _buffer, _in_bounds, _replace_loop_body, region
from deepc.schedule.stmt_rewrite import rewrite_loads

MAX_COPY_LANES = 64


def pack(f: PrimFunc, buffer: str, loop: str, minor: str, scope: str = "global") -> PrimFunc:
    """Pack the region of `buffer` read in one iteration of `loop` into a panel whose last
    dimension is the one indexed by loop `minor` (the others keep their order)."""
    buf = _buffer(f, buffer)
    consumer = find_loop(f.body, loop)
    try:
        minor_var = find_loop(consumer.body, minor).var
    except KeyError:
        raise ValueError(f"pack: loop {minor!r} is not inside {loop!r}") from None
    reg = region(consumer.body, buf, stores=False)
    loads = [n for s in walk_stmts(consumer.body) for e in _exprs(s) for n in walk(e)
             if isinstance(n, Load) and n.source == buf]
    dims = [d for d in range(len(buf.shape))
            if any(affine(ld.indices[d]).coef(minor_var) for ld in loads)]
    if len(dims) != 1:
        raise ValueError(f"pack: {minor!r} must index exactly one dimension of {buffer}")
    order = [d for d in range(len(buf.shape)) if d != dims[0] and reg[d][1] > 1] + dims
    kept = set(order)
    panel = Buffer(f"{buf.name}_pack", tuple(reg[d][1] for d in order), buf.dtype, scope)
    starts = [start.to_expr() for start, _ in reg]

    def redirect(e: Expr) -> Expr | None:
        if isinstance(e, Load) and e.source == buf:
            return Load(panel, tuple(binary("sub", e.indices[d], starts[d]) for d in order))
        return None

    pvars = [Var(f"{panel.name}_p{d}", INDEX) for d in range(len(order))]
    src: list[Expr] = []
    for d in range(len(buf.shape)):
        local: Expr = pvars[order.index(d)] if d in kept else Const(0, INDEX)
        src.append(binary("add", starts[d], local))
    guard = None if _aligned(reg, buf.shape) else _in_bounds(src, buf.shape)
    copy: Stmt = Store(panel, tuple(pvars), Load(buf, tuple(src)))
    if guard is not None:
        zero = Const(0.0 if buf.dtype.startswith(("float", "bfloat")) else 0, buf.dtype)
        copy = IfThenElse(guard, copy, Store(panel, tuple(pvars), zero))
    contiguous = len(src) and affine(src[-1]).coef(pvars[-1]) == 1 and dims[0] == len(src) - 1
    last = panel.shape[-1]
    kind = ForKind.VECTORIZED if contiguous and 1 < last <= MAX_COPY_LANES else ForKind.SERIAL
    copy = For(pvars[-1], last, kind, copy)
    if guard is not None and kind is ForKind.VECTORIZED:
        # vectors for the panels inside the operand, lane by lane only at its edge
        copy = unguard_loop(copy, {panel.name: panel.shape})
    for v, ext in reversed(list(zip(pvars[:-1], panel.shape[:-1]))):
        copy = For(v, ext, ForKind.SERIAL, copy)
    return _replace_loop_body(
        f, loop, lambda body: Allocate(panel, seq(copy, rewrite_loads(body, redirect))))


def _exprs(s: Stmt) -> list[Expr]:
    if isinstance(s, Store):
        return [*s.indices, s.value]
    if isinstance(s, IfThenElse):
        return [s.cond]
    return []


def _aligned(reg: list, shape: tuple[int, ...]) -> bool:
    """Whether every block lies inside the operand: it starts at a multiple of its extent
    (or at a constant) and the extent divides the dimension."""
    for (start, ext), dim in zip(reg, shape):
        if dim % ext or start.const % ext or (start.const + ext > dim and not start.terms):
            return False
        if any(c % ext for _, c in start.terms):
            return False
        if any(not isinstance(t, Var) for t, _ in start.terms):
            return False
    return True


__all__ = ["pack"]

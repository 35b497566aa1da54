"""Fold a convolution's padding copy into the tiled matrix product that reads it.

A conv lowers to two stages: a copy of the input into a zero-padded scratch buffer, then the
product over windows of that buffer. On the GPU the copy is a whole launch and a pass over
memory (about a tenth of ResNet-18's time at batch 32 on an H200). Where the product becomes
a tiled GEMM, its reads of the padded buffer become guarded reads of the source instead
(`inside ? x[...] : 0`), which the GEMM's operand fetch splits into per-thread and per-k
parts (backends/cuda/gemm_operand.py); the copy launch and its scratch buffer go.
"""

from __future__ import annotations

from deepc.ir.expr import Const, Expr, Load, Select, Var
from deepc.ir.loop import Buffer, For, PrimFunc, Stmt, Store, walk_stmts
from deepc.ir.rewrite import substitute
from deepc.ir.tensor import walk


def copy_stage(stage: Stmt) -> tuple[Buffer, tuple[Var, ...], Expr] | None:
    """A stage `for i... { buf[i...] = value }` whose value is one load, optionally guarded
    (`cond ? x[...] : c`, a convolution's zero padding): cheap to recompute where read."""
    loop_vars: list[Var] = []
    s = stage
    while isinstance(s, For):
        loop_vars.append(s.var)
        s = s.body
    if not isinstance(s, Store) or s.buffer.scope != "global" or s.indices != tuple(loop_vars):
        return None
    v = s.value
    load = v.t if isinstance(v, Select) and isinstance(v.f, Const) else v
    if not isinstance(load, Load) or load.source.scope != "global":
        return None
    if any(isinstance(x, Load) and x is not load for x in walk(v)):
        return None  # the condition reads memory
    return s.buffer, tuple(loop_vars), v


def inline_copy(producer: Stmt, consumer: Stmt) -> tuple[Stmt, Buffer] | None:
    """`consumer` with its reads of the copy stage `producer`'s buffer replaced by the
    copied (padded) value; None when `producer` is no such copy or `consumer` writes it."""
    from deepc.schedule.stmt_rewrite import rewrite_loads

    copy = copy_stage(producer)
    if copy is None:
        return None
    buf, loop_vars, value = copy
    if any(isinstance(x, Store) and x.buffer.name == buf.name for x in walk_stmts(consumer)):
        return None

    def fn(e: Expr) -> Expr | None:
        if isinstance(e, Load) and e.source.name == buf.name:
            return substitute(value, dict(zip(loop_vars, e.indices)))
        return None

    return rewrite_loads(consumer, fn), buf


def reads(s: Stmt, name: str) -> bool:
    return any(isinstance(e, Load) and e.source.name == name
               for x in walk_stmts(s) if isinstance(x, Store)
               for e in walk(x.value))


def inline_copies(func: PrimFunc, stmts: list[Stmt], scratch: tuple[Buffer, ...],
                  target: object, tf32: bool) -> tuple[list[Stmt], tuple[Buffer, ...]]:
    """Each copy stage whose only reader is the next stage, where that stage with the copy
    folded in is still a tiled GEMM: folded (no copy launch, no scratch buffer)."""
    from deepc.schedule.gpu import gemm_stage

    out: list[Stmt] = []
    k = 0
    while k < len(stmts):
        done = inline_copy(stmts[k], stmts[k + 1]) if k + 1 < len(stmts) else None
        if done is not None:
            body, buf = done
            others = [s for j, s in enumerate(stmts) if j not in (k, k + 1)]
            probe = PrimFunc(func.name, func.params + scratch, body, dict(func.attrs))
            if (buf in scratch and reads(stmts[k + 1], buf.name)
                    and not any(reads(s, buf.name) for s in others)
                    and gemm_stage(probe, target, tf32) is not None):
                scratch = tuple(b for b in scratch if b is not buf)
                stmts = [*stmts[:k], body, *stmts[k + 2:]]
                continue
        out.append(stmts[k])
        k += 1
    return out, scratch

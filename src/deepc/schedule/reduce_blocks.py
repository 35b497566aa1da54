"""The block_reduction primitive: a register-tiled reduction to one whose reduction loop runs
in blocks outside the loops over the outputs, the partial sums carried from block to block in
a scratch copy of the output, the epilogue only after the last block.

    for co { for h { acc[..] = 0                  scratch[out shape]
                     for rc in 0..32 { acc += }   for rc_b in 0..4 { for co { for h {
                     out[..] = g(acc[..]) } }         acc[..] = rc_b == 0 ? 0 : scratch[..]
block_reduction(co, rc, 4) ->                         for rc in 0..8 { acc += (rc_b*8 + rc) }
                                                      if rc_b == 3: out[..] = g(acc[..])
                                                      else: scratch[..] = acc[..] } } }

One block's operands (an eighth of the input channels, their weights) stay in cache while
every output passes over them, where the whole reduction's would not. Each output's sum
takes its terms in the same order; only where it waits between blocks changes.
"""

from __future__ import annotations

from deepc.errors import ScheduleError
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
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.schedule.primitives import _replace_loop
from deepc.schedule.stmt_rewrite import map_stmt, substitute_stmt


def block_reduction(f: PrimFunc, at: str, loop: str, blocks: int) -> PrimFunc:
    """Run the reduction loop `loop` (inside the loop nest `at`, under a tiled accumulator) in
    `blocks` blocks, the loop over blocks around `at` (see the module docstring); ScheduleError
    where the nest is not one accumulator's init, reduction and stores of the output, or the
    blocks do not divide the loop (a tuning candidate that does not apply: logged, not fatal)."""

    def fn(outer: For) -> Stmt:
        found = [s for s in walk_stmts(outer) if isinstance(s, Allocate)
                 and s.buffer.scope == "local" and isinstance(s.body, Seq)
                 and any(isinstance(x, For) and x.var.name == loop
                         for part in s.body.stmts for x in walk_stmts(part))]
        if len(found) != 1:
            raise ScheduleError(f"block_reduction: {loop} is not under one accumulator in"
                                f" {at}")
        alloc = found[0]
        red_loop = next(x for x in walk_stmts(alloc) if isinstance(x, For)
                        and x.var.name == loop)
        extent = red_loop.extent
        if not (isinstance(extent, int) and blocks >= 2 and extent % blocks == 0
                and red_loop.start == 0 and red_loop.step == 1):
            raise ScheduleError(f"block_reduction: {blocks} blocks do not divide {loop}"
                                f" ({extent})")
        acc = alloc.buffer
        parts = list(alloc.body.stmts)  # type: ignore[attr-defined]
        k = next(i for i, p in enumerate(parts)
                 if any(x is red_loop for x in walk_stmts(p)))
        init, red, epilogue = parts[:k], parts[k], parts[k + 1:]
        outputs = _output_indices(epilogue, acc)
        scratch = Buffer(f"{acc.name}_part", outputs[0][0].shape, acc.dtype, "global")
        block = Var(f"{loop}_b", INDEX)
        size = extent // blocks

        def resume(s: Stmt) -> Stmt | None:  # acc[i] = init -> acc[i] = scratch[out index]
            if isinstance(s, Store) and s.buffer == acc:
                index = next((o for o in outputs if o[1] == s.indices), None)
                if index is None:
                    raise ScheduleError(f"block_reduction: {acc.name}{list(s.indices)} is set"
                                     " but never stored to the output")
                return Store(acc, s.indices, Load(scratch, index[2]))
            return None

        def save(s: Stmt) -> Stmt | None:  # out[o] = g(acc[i]) -> scratch[o] = acc[i]
            if isinstance(s, Store) and s.buffer == outputs[0][0]:
                index = next(o for o in outputs if o[2] == s.indices)
                return Store(scratch, s.indices, Load(acc, index[1]))
            return None

        def shorten(s: Stmt) -> Stmt | None:
            if isinstance(s, For) and s.var.name == loop:
                body = substitute_stmt(s.body, {s.var: binary("add", binary(
                    "mul", block, Const(size, INDEX)), s.var)})
                return For(s.var, size, s.kind, body, s.thread_axis)
            return None

        first = binary("eq", block, Const(0, INDEX))
        last = binary("eq", block, Const(blocks - 1, INDEX))
        body = Seq((*(IfThenElse(first, p, map_stmt(p, resume)) for p in init),
                    map_stmt(red, shorten),
                    *(IfThenElse(last, p, map_stmt(p, save)) for p in epilogue)))
        rebuilt = map_stmt(outer, lambda s: Allocate(acc, body)
                           if isinstance(s, Allocate) and s.buffer == acc else None)
        return Allocate(scratch, For(block, blocks, ForKind.SERIAL, rebuilt))

    try:
        return _replace_loop(f, at, fn)
    except KeyError as e:  # no loop `at`
        raise ScheduleError(f"block_reduction: {e.args[0]}") from None


def _output_indices(epilogue: list[Stmt], acc: Buffer
                    ) -> list[tuple[Buffer, tuple[Expr, ...], tuple[Expr, ...]]]:
    """(output buffer, accumulator index, output index) of each store of the epilogue; they
    must all go to one output and each read one accumulator element."""
    found = []
    for s in (x for p in epilogue for x in walk_stmts(p)):
        if not isinstance(s, Store):
            continue
        reads = {n.indices for n in walk(s.value) if isinstance(n, Load) and n.source == acc}
        if len(reads) != 1 or s.buffer.scope != "global":
            raise ScheduleError(f"block_reduction: the store to {s.buffer.name} does not read"
                             f" one element of {acc.name}")
        found.append((s.buffer, reads.pop(), s.indices))
    if not found or len({b for b, _, _ in found}) != 1:
        raise ScheduleError(f"block_reduction: {acc.name} is not stored to one output")
    return found

"""`prefetch_next`: a register-tiled nest that reuses an operand's panel over several rows ->
the same nest, prefetching the next panel a slice per reduction step, spread over the rows.

A conv's weight panel (the output-channel blocks of a tile) is read from memory by the first
row of tiles, then from L2 by the others. Left to the hardware, that first row asks for the
whole panel at once, faster than memory delivers it, and stalls: resnet18's 512-channel 3x3
convs take 0.89 ms with their 9 MiB of weights in cache, 1.2 ms inside the model where they
come from memory. Prefetching the next panel all in the first row stalls the same way (no
gain, measured); spread evenly over every row's steps, each asks memory for a few lines per
step, and those convs take 0.95 ms inside the model.

    for co_o in 0..16 { for y in 0..7 { acc = 0
      for ci in 0..32 { for ky in 0..3 { for kx in 0..3 { for c in 0..16 {
        unrolled for co_i in 0..2 { unrolled for x in 0..7 { vectorized for v in 0..16 {
          acc[co_i, x, v] += in[ci, y + ky, x + kx, c] * w[co_o*2 + co_i, ci, ky, kx, c, v] }}}
      }}}} .. }}
prefetch_next(co_o, y, ci, kx, w) ->  (the next panel: 9216 lines over 7 x 288 steps: 5 each)
      for ci { for ky { for kx {
        prefetch(&w.flat[min(co_o + 1, 15)*147456 + (((y*32 + ci)*3 + ky)*3 + kx)*80 + 0])
        .. + 16], .. + 32], .. + 48], .. + 64])
        for c in 0..16 { (as before) } }}}
"""

from __future__ import annotations

from dataclasses import replace
from math import prod

from deepc.ir import expr as E
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import INDEX, AddressOf, Const, Load, Var
from deepc.ir.loop import (
    Evaluate,
    For,
    PrimFunc,
    Stmt,
    Store,
    find_loop,
    loops,
    seq,
    stmt_children,
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize
from deepc.schedule.stmt_rewrite import map_stmt

MAX_LINES = 16  # prefetches per step: past it, the step costs more than the misses saved


def prefetch_next(f: PrimFunc, outer: str, row: str, first: str, loop: str, buffer: str,
                  line_bytes: int = 64) -> PrimFunc:
    """Prefetch the panel of `buffer` that the next iteration of `outer` reads, at the top
    of `loop`: the reduction loops from `first` to `loop` and the loop `row` (inside
    `outer`, the panel's reuse) share it out in consecutive lines. A no-op where the panel
    is not one affine stride of `outer` or needs more than MAX_LINES lines a step."""
    out = find_loop(f.body, outer)
    rows = find_loop(out.body, row)
    path = _path(rows.body, loop)
    if path is None or first not in [p.var.name for p in path]:
        raise KeyError(f"prefetch_next: no loops {first}..{loop} inside {row}")
    steps = path[[p.var.name for p in path].index(first):]
    fetches = _fetches(out, rows, steps, buffer, line_bytes)
    if not fetches:
        return f

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name == loop:
            return replace(s, body=seq(*fetches, s.body))
        return None

    return f.with_body(map_stmt(f.body, visit))


def _fetches(out: For, rows: For, steps: list[For], buffer: str,
             line_bytes: int) -> list[Stmt]:
    body = steps[-1].body
    found = [n for x in walk_stmts(body) if isinstance(x, Store)
             for n in walk(x.value) if isinstance(n, Load) and n.source.name == buffer]
    if not found:
        return []
    buf = found[0].source
    offset = affine(flat_offset(buf.shape, found[0].indices))
    panel = offset.coef(out.var)  # elements one iteration of `outer` moves on
    per_line = max(line_bytes // max(itemsize(buf.dtype), 1), 1)
    count = prod(s.extent for s in steps)
    panel_lines = -(-panel // per_line)
    lines = -(-panel_lines // (rows.extent * count)) if panel > 0 else 0
    dropped = {x.var for x in loops(body)} | {s.var for s in steps}
    moving = dropped | {out.var}
    opaque = [t for t, _ in offset.terms if not isinstance(t, Var)
              and any(isinstance(x, Var) and x in moving for x in walk(t))]
    if not 0 < lines <= MAX_LINES or opaque:
        return []
    nxt = E.minimum(out.var + Const(1, INDEX), Const(out.extent - 1, INDEX))
    base: E.Expr = Const(offset.const, INDEX) + nxt * Const(panel, INDEX)
    for t, c in offset.terms:
        if t != out.var and t not in dropped:
            base = base + t * Const(c, INDEX)
    step: E.Expr = rows.var  # this step's place among all the panel's steps
    for s in steps:
        step = step * Const(s.extent, INDEX) + s.var
    start = base + step * Const(lines * per_line, INDEX)
    return [Evaluate("prefetch", (AddressOf(buf, start + Const(j * per_line, INDEX)),))
            for j in range(lines)]


def _path(s: Stmt, name: str) -> list[For] | None:
    """The loops from `s` down to the loop named `name`, outermost first."""
    if isinstance(s, For) and s.var.name == name:
        return [s]
    for k in stmt_children(s):
        below = _path(k, name)
        if below is not None:
            return [s, *below] if isinstance(s, For) else below
    return None

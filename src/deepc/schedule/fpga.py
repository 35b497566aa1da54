"""The FPGA default schedule: loop IR to a schedule of pipelined loops with unrolled tiles.

First, a read-only parameter that the loops reuse (a conv's weights: every output pixel of a
channel reads the same filter) is copied into an on-chip BRAM tile once per iteration of the
innermost loop that indexes it outside a loop that does not, where that tile is small
enough; the tile is partitioned so an unrolled tile of the reduction reads it in one cycle.
A running sum per output whose reduction exceeds the unroll tile is turned around where that
pays (schedule/reduce_outside.py): the sums of a tile of outputs live on chip, the
reduction loops go outside, and the outputs are summed side by side. Then, in each
innermost perfect loop chain, loops are unrolled from the inside out while their combined
trip count stays within `unroll` (the multipliers the DSP budget allows one
kernel); the next loop out is split so that its inner part fills the rest of the tile, and
its outer part is pipelined, fused with the loops it is perfectly nested in. Where the whole
chain fits the tile (a small reduction: a 3x3 window), it is unrolled into the pipeline of
the loop over outputs around it, which starts one output a cycle. A pipelined loop that
updates an accumulator carries a dependence through one add: where it has the iterations for
it, its sum is interleaved over as many partial sums as the adder has stages
(schedule/interleave.py), so it starts one iteration a cycle; otherwise its initiation
interval is that add's latency.
"""

from __future__ import annotations

import math
from collections import Counter

from deepc.ir.expr import Binary, Load, Var
from deepc.ir.loop import (
    Allocate,
    For,
    LetStmt,
    PrimFunc,
    Stmt,
    Store,
    loops,
    stmt_children,
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.schedule.interleave import accumulator
from deepc.schedule.reduce_outside import output_nest
from deepc.schedule.schedule import Schedule

FADD_CYCLES = 4  # latency of a float32 add at 200-300 MHz: a reduction's interval


def _parents(body: Stmt) -> dict[int, For]:
    out: dict[int, For] = {}
    for s in walk_stmts(body):
        if isinstance(s, For):
            for c in stmt_children(s):
                out[id(c)] = s
    return out


def _chain(leaf: For, parents: dict[int, For]) -> list[For]:
    """`leaf` and the loops around it that hold nothing else, innermost first."""
    chain = [leaf]
    while id(chain[-1]) in parents and parents[id(chain[-1])].body is chain[-1]:
        chain.append(parents[id(chain[-1])])
    return chain


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


def _enclosing(body: Stmt, target: Load) -> list[For]:
    """The loops around the first statement that loads `target`'s buffer, outermost first."""
    def visit(s: Stmt, outer: list[For]) -> list[For] | None:
        if isinstance(s, Store | LetStmt) and any(
                isinstance(e, Load) and e.source == target.source for e in walk(s.value)):
            return outer
        inner = [*outer, s] if isinstance(s, For) else outer
        for c in stmt_children(s):
            found = visit(c, inner)
            if found is not None:
                return found
        return None

    return visit(body, []) or []


def bram_tiles(f: PrimFunc, limit: int) -> list[tuple[str, str, int]]:
    """(parameter, loop, tile elements) for each read-only parameter worth an on-chip tile."""
    stored = {s.buffer.name for s in walk_stmts(f.body) if isinstance(s, Store)}
    loads: dict[str, list[Load]] = {}
    for s in walk_stmts(f.body):
        if isinstance(s, Store | LetStmt):
            for e in walk(s.value):
                if isinstance(e, Load) and e.source.scope == "global":
                    loads.setdefault(e.source.name, []).append(e)
    params = {b.name for b in f.params}
    out = []
    for name, found in loads.items():
        if name in stored or name not in params or len(found) != 1:
            continue
        nest = _enclosing(f.body, found[0])
        used = {v.name for i in found[0].indices for v in walk(i) if isinstance(v, Var)}
        uses = [x.var.name in used for x in nest]
        at = next((j for j in range(len(nest) - 1, -1, -1)
                   if uses[j] and not all(uses[j + 1:]) and not uses[j + 1]), None)
        if at is None or any(not isinstance(x.extent, int) for x in nest[at + 1:]):
            continue
        size = 1
        for x, u in zip(nest[at + 1:], uses[at + 1:]):
            size *= x.extent if u else 1  # type: ignore[operator]
        if 1 < size <= limit:
            out.append((name, nest[at].var.name, size))
    return out


def _updates(loop: For) -> list[Store]:
    """The stores in `loop` that update an element in place (read it in their value)."""
    return [s for s in walk_stmts(loop.body) if isinstance(s, Store)
            and any(isinstance(e, Load) and e.source == s.buffer for e in walk(s.value))]


def interval(nest: list[For], trips: int, add_cycles: int) -> int | None:
    """The interval of a pipeline running `nest` (outermost first; the innermost now `trips`
    iterations) as one loop, with the loops inside it unrolled: 1, or the latency of an
    update (an add's; min/max is a comparison, one cycle) whose element comes back sooner.
    An element indexed by none of `nest` comes back every iteration; one indexed by a suffix
    of it, once per iteration of that suffix. None where an element comes back at intervals
    that one loop cannot keep (indexed by an outer loop of `nest` but not an inner one)."""
    names = [x.var.name for x in nest]
    extents = [x.extent for x in nest[:-1]] + [trips]
    ii = 1
    for s in _updates(nest[0]):
        used = {v.name for i in s.indices for v in walk(i) if isinstance(v, Var)}
        flags = [n in used for n in names]
        first = flags.index(True) if True in flags else len(flags)
        if not all(flags[first:]):
            return None
        v = s.value
        latency = 1 if isinstance(v, Binary) and v.op in ("min", "max") else add_cycles
        if math.prod(extents[first:]) < latency:  # type: ignore[arg-type]
            ii = max(ii, latency)
    return ii


def _pipeline(sch: Schedule, loop: For, name: str, trips: int, outer: list[For],
              add_cycles: int) -> None:
    """Pipeline `name` (`loop` as it was before splitting: `trips` iterations now), fused with
    the loops `outer` around it (innermost first) into one pipeline where the interval
    allows. A running sum with a multi-cycle adder is interleaved over that many partial sums
    to reach II=1, where it saves more cycles than adding the partial sums up costs."""
    nest, inner = [loop], trips
    if outer and interval([*reversed(outer), loop], trips, add_cycles) is not None:
        for x in outer:
            sch.add("fuse", x.var.name, name)
            name, trips = f"{x.var.name}_{name}", trips * x.extent  # type: ignore[operator]
        nest = [*reversed(outer), loop]
    ii = interval(nest, inner, add_cycles) or 1
    fold = math.ceil(math.log2(ii)) * add_cycles if ii > 1 else 0
    if ii > 1 and (trips - 1) * (ii - 1) > fold and accumulator(nest[0]) is not None:
        sch.add("interleave", name, ii)
        ii = 1
    sch.add("pipeline", name, ii)


def _nameable(loop: For, counts: Counter[str]) -> bool:
    """Whether primitives can name, split and fuse `loop` (a unique name, 0..n by 1)."""
    return (counts[loop.var.name] == 1 and isinstance(loop.extent, int) and loop.start == 0
            and loop.step == 1)


def _around(body: Stmt, inner: For) -> For | None:
    """The nearest loop around `inner` (None at the function's top)."""
    def visit(s: Stmt, outer: For | None) -> tuple[bool, For | None]:
        if s is inner:
            return True, outer
        for c in stmt_children(s):
            found = visit(c, s if isinstance(s, For) else outer)
            if found[0]:
                return found
        return False, None

    return visit(body, None)[1]


def _unrolls_whole(loop: For, chain: list[For], counts: Counter[str]) -> bool:
    """Whether `loop` can be pipelined with everything inside it unrolled: its only loops are
    `chain`, and every buffer it updates in place is allocated inside it (fresh each time)."""
    inside = [s for s in walk_stmts(loop.body) if isinstance(s, For)]
    if not _nameable(loop, counts) or {id(x) for x in inside} != {id(x) for x in chain}:
        return False
    fresh = {s.buffer.name for s in walk_stmts(loop.body) if isinstance(s, Allocate)}
    return all(s.buffer.name in fresh for s in walk_stmts(loop.body)
               if isinstance(s, Store) and any(isinstance(e, Load) and e.source == s.buffer
                                               for e in walk(s.value)))


def _perfect(loop: For) -> list[For]:
    """`loop` and the loops perfectly nested in it, outermost first."""
    out = [loop]
    while isinstance(out[-1].body, For):
        out.append(out[-1].body)  # type: ignore[arg-type]
    return out


def _tile(extents: list[int], unroll: int) -> int:
    """The unrolled iterations the schedule makes of a loop chain (`extents` innermost first):
    whole loops while they fit `unroll`, then the largest divisor of the next that does."""
    tile = 1
    for n in extents:
        if tile * n > unroll:
            return tile * _largest_divisor(n, unroll // tile)
        tile *= n
    return tile


def _side_by_side_pays(outputs: list[int], red: list[int], unroll: int,
                       add_cycles: int) -> bool:
    """Whether summing outputs side by side takes fewer cycles per output than a pipeline per
    output (whose fill and drain is a few adds and loads deep). Where every output of the tile
    is unrolled, each is updated every iteration: at the adder's interval."""
    per_output = math.prod(red) / _tile(outputs[::-1] + red[::-1], unroll)
    if _tile(outputs[::-1], unroll) == math.prod(outputs):
        per_output *= add_cycles
    return per_output < math.prod(red) / _tile(red[::-1], unroll) + 8 + 6 * add_cycles


def sum_tiles(f: PrimFunc, unroll: int, limit: int,
              add_cycles: int = FADD_CYCLES) -> list[tuple[str, str]]:
    """(outermost output loop, running sum) of each nest of outputs whose reduction exceeds
    the unroll tile (a pipeline per output would start and drain per output) and whose
    outputs fit an on-chip tile of `limit` elements: reduce_outside turns each around."""
    counts = Counter(x.var.name for x in loops(f.body))
    out: list[tuple[str, str]] = []

    def visit(s: Stmt) -> None:
        found = output_nest(s) if isinstance(s, For) else None
        if found is not None:
            nest, alloc = found
            red = [x.extent for x in _perfect(alloc.body.stmts[1])]  # type: ignore[attr-defined]
            outputs = [x.extent for x in nest]
            if (all(isinstance(n, int) for n in red) and math.prod(red) > unroll
                    and 1 < math.prod(outputs) <= limit  # type: ignore[arg-type]
                    and all(_nameable(x, counts) for x in nest)
                    and _side_by_side_pays(outputs, red, unroll, add_cycles)):
                out.append((nest[0].var.name, alloc.buffer.name))
                return
        for c in stmt_children(s):
            visit(c)

    visit(f.body)
    return out


def fpga_schedule(f: PrimFunc, unroll: int, tile_limit: int = 0,
                  add_cycles: int = FADD_CYCLES) -> Schedule:
    """BRAM tiles of at most `tile_limit` elements, then pipelined loops with unrolled tiles of
    at most `unroll` iterations (see the module); `add_cycles`: the adder's latency."""
    sch = Schedule(knobs={"unroll": unroll})
    for name, loop, _ in bram_tiles(f, tile_limit):
        sch.add("cache_read", name, loop, "bram").add("partition", f"{name}_bram", unroll)
    for loop, acc in sum_tiles(sch.apply(f), unroll, tile_limit, add_cycles):
        sch.add("reduce_outside", loop).add("partition", f"{acc}_tile", unroll)
    f = sch.apply(f)
    all_loops = loops(f.body)
    counts = Counter(x.var.name for x in all_loops)
    parents = _parents(f.body)
    for leaf in all_loops:
        if any(isinstance(s, For) for s in walk_stmts(leaf.body)):
            continue
        chain = _chain(leaf, parents)
        if not all(_nameable(x, counts) for x in chain):
            continue  # loops a primitive cannot name or split: left serial
        tile, k = 1, 0
        while k < len(chain) and tile * chain[k].extent <= unroll:
            tile *= chain[k].extent  # type: ignore[operator]
            k += 1
        for x in chain[:k - 1] if k == len(chain) else chain[:k]:
            sch.add("unroll", x.var.name)
        if k == len(chain):  # the whole chain fits the tile
            top = chain[-1]
            around = _around(f.body, top)
            if around is not None and _unrolls_whole(around, chain, counts):
                # one output per cycle: the tile's reduction unrolled into the pipeline of
                # the loop over outputs around it, which then carries nothing
                sch.add("unroll", top.var.name)
                outer = _chain(around, parents)[1:]
                outer = outer[:next((j for j, x in enumerate(outer)
                                     if not _nameable(x, counts)), len(outer))]
                _pipeline(sch, around, around.var.name, around.extent, outer,  # type: ignore[arg-type]
                          add_cycles)
                continue
            _pipeline(sch, top, top.var.name, top.extent, [], add_cycles)  # type: ignore[arg-type]
            continue
        nxt = chain[k]
        name, factor = nxt.var.name, _largest_divisor(nxt.extent, unroll // tile)  # type: ignore[arg-type]
        if factor > 1:
            sch.add("split", name, factor).add("unroll", f"{name}_i")
            name = f"{name}_o"
        _pipeline(sch, nxt, name, nxt.extent // factor, chain[k + 1:],  # type: ignore[operator]
                  add_cycles)
    return sch

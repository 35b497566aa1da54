"""The FPGA default schedule: loop IR to a schedule of pipelined loops with unrolled tiles.

In each innermost perfect loop chain, loops are unrolled from the inside out while their
combined trip count stays within `unroll` (the multipliers the DSP budget allows one
kernel); the next loop out is split so that its inner part fills the rest of the tile, and
its outer part is pipelined. A pipelined loop that updates an accumulator carries a
dependence through one float add, so its initiation interval is that add's latency.
"""

from __future__ import annotations

from collections import Counter

from deepc.ir.expr import Load, Var
from deepc.ir.loop import For, PrimFunc, Stmt, Store, loops, stmt_children, walk_stmts
from deepc.ir.tensor import walk
from deepc.schedule.schedule import Schedule

FADD_CYCLES = 4  # latency of a float32 add at 200-300 MHz: a reduction's interval


def _parents(body: Stmt) -> dict[int, For]:
    out: dict[int, For] = {}
    for s in walk_stmts(body):
        if isinstance(s, For):
            for c in stmt_children(s):
                out[id(c)] = s
    return out


def accumulates(loop: For) -> bool:
    """Whether the loop's body stores to an element it reads that the loop does not index:
    an accumulator, a recurrence through one add per iteration."""
    own = {x.var.name for x in loops(loop)}
    for s in walk_stmts(loop.body):
        if not isinstance(s, Store):
            continue
        names = {v.name for i in s.indices for v in walk(i) if isinstance(v, Var)}
        reads = any(isinstance(e, Load) and e.source == s.buffer for e in walk(s.value))
        if reads and not names & own:
            return True
    return False


def _chain(leaf: For, parents: dict[int, For]) -> list[For]:
    """`leaf` and the loops around it that hold nothing else, innermost first."""
    chain = [leaf]
    while id(chain[-1]) in parents and parents[id(chain[-1])].body is chain[-1]:
        chain.append(parents[id(chain[-1])])
    return chain


def _largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


def fpga_schedule(f: PrimFunc, unroll: int) -> Schedule:
    """Pipelined loops with unrolled tiles of at most `unroll` iterations (see the module)."""
    sch = Schedule(knobs={"unroll": unroll})
    all_loops = loops(f.body)
    counts = Counter(x.var.name for x in all_loops)
    parents = _parents(f.body)
    for leaf in all_loops:
        if any(isinstance(s, For) for s in walk_stmts(leaf.body)):
            continue
        chain = _chain(leaf, parents)
        if any(counts[x.var.name] > 1 or not isinstance(x.extent, int) or x.start != 0
               or x.step != 1 for x in chain):
            continue  # loops a primitive cannot name or split: left serial
        tile, k = 1, 0
        while k < len(chain) and tile * chain[k].extent <= unroll:
            tile *= chain[k].extent  # type: ignore[operator]
            k += 1
        for x in chain[:k - 1] if k == len(chain) else chain[:k]:
            sch.add("unroll", x.var.name)
        if k == len(chain):  # the whole chain fits the tile: pipeline its outermost loop
            top = chain[-1]
            sch.add("pipeline", top.var.name, FADD_CYCLES if accumulates(top) else 1)
            continue
        nxt = chain[k]
        name, factor = nxt.var.name, _largest_divisor(nxt.extent, unroll // tile)  # type: ignore[arg-type]
        if factor > 1:
            sch.add("split", name, factor).add("unroll", f"{name}_i")
            name = f"{name}_o"
        sch.add("pipeline", name, FADD_CYCLES if accumulates(nxt) else 1)
    return sch

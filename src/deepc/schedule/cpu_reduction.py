"""Default CPU schedule for reductions that produce a tensor (conv, matmul, pooling, ...):
a register tile of accumulators, vectors along the contiguous output axis.

For out[.., t, .., v] = sum_r f(..): `v` (the innermost output loop) becomes vector lanes;
`t` is the innermost other output loop that the vector operand does not depend on (output
channels of a conv, rows of a matmul), so one vector load feeds `mr` multiply-adds against
broadcast scalars. The tile loops go innermost, inside the reduction loops, and the
accumulators stay in registers (see tile_reduction).
"""

from __future__ import annotations

from dataclasses import dataclass

from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Load, Var
from deepc.ir.loop import Allocate, For, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize


@dataclass(frozen=True)
class TilePlan:
    steps: list[tuple]
    outer: list[tuple[str, int]]  # the loops left outside the tile, outermost first


def best_factor(extent: int, limit: int) -> int:
    """The largest divisor of extent not above limit, or limit itself when divisors are
    poor (a bounds test then guards the last tile)."""
    if extent <= limit:
        return extent
    best = max(d for d in range(1, limit + 1) if extent % d == 0)
    return best if best * 2 > limit else limit


def plan_reduction_tile(chain: list[For], vector_bits: int) -> TilePlan | None:
    alloc = chain[-1].body
    if not (isinstance(alloc, Allocate) and alloc.buffer.scope == "local"
            and alloc.buffer.shape == (1,)):
        return None
    acc = alloc.buffer
    lanes = max(vector_bits // (8 * max(itemsize(acc.dtype), 1)), 1)
    vec = choose_vector_loop(chain, alloc, lanes)
    if vec is None or lanes < 2:
        return None
    nr = vec.extent if vec.extent <= lanes else best_factor(vec.extent, lanes)
    vector_vars = _vars_of_vector_loads(alloc, vec.var)
    candidates = [c for c in chain if c is not vec and c.extent >= 2
                  and c.var not in vector_vars]
    budget = 16 if vector_bits >= 512 else 8
    steps: list[tuple] = []
    names = [(c.var.name, c.extent) for c in chain]
    if vec is not chain[-1]:  # the vector loop goes innermost
        after = [n for n, _ in names[[n for n, _ in names].index(vec.var.name) + 1:]]
        steps.append(("reorder", *after, vec.var.name))
        names.remove((vec.var.name, vec.extent))
        names.append((vec.var.name, vec.extent))
    vec_i = vec.var.name
    if nr < vec.extent:
        steps.append(("split", vec_i, nr))
        i = [n for n, _ in names].index(vec_i)
        names[i:i + 1] = [(f"{vec_i}_o", -(-vec.extent // nr)), (f"{vec_i}_i", nr)]
        vec_i = f"{vec_i}_i"
    tile_i = None
    if candidates:
        tile = candidates[-1]
        mr = best_factor(tile.extent, budget)
        tile_i = tile.var.name
        if mr < tile.extent:
            steps.append(("split", tile_i, mr))
            i = [n for n, _ in names].index(tile_i)
            names[i:i + 1] = [(f"{tile_i}_o", -(-tile.extent // mr)), (f"{tile_i}_i", mr)]
            tile_i = f"{tile_i}_i"
        order = [n for n, _ in names]
        t, v = order.index(tile_i), order.index(vec_i)
        if v != t + 1:
            between = order[t + 1:v]
            steps.append(("reorder", *between, tile_i))
            moved = names.pop(t)
            names.insert(v - 1, moved)
    tile_names = [tile_i, vec_i] if tile_i else [vec_i]
    steps.append(("tile_reduction", *tile_names))
    if tile_i:
        steps.append(("unroll", tile_i))
    steps.append(("vectorize", vec_i))
    outer = [(n, e) for n, e in names if n not in tile_names]
    return TilePlan(steps, outer)


def choose_vector_loop(chain: list[For], alloc: Allocate, lanes: int) -> For | None:
    """The output loop to run as vector lanes: one along which every load is contiguous or
    invariant (no gathers), preferring loops that fill the lanes, then inner ones."""
    loads = [n for s in walk_stmts(alloc.body) if isinstance(s, Store)
             for n in walk(s.value) if isinstance(n, Load)]

    def gathers(loop: For) -> int:
        count = 0
        for load in loads:
            offset = flat_offset(load.source.shape, load.indices)
            if any(isinstance(x, Var) and x == loop.var for x in walk(offset)):
                count += affine(offset).coef(loop.var) != 1 or _opaque_use(offset, loop.var)
        return count

    scored = [((gathers(c) == 0, min(c.extent, lanes) * 2 >= lanes, k), c)
              for k, c in enumerate(chain) if c.extent >= 2]
    return max(scored, key=lambda sc: sc[0])[1] if scored else None


def _opaque_use(offset, var: Var) -> bool:  # type: ignore[no-untyped-def]
    """Whether `var` occurs inside a non-affine part of the offset (a // or %)."""
    return any(isinstance(t, Var) is False and any(isinstance(x, Var) and x == var
                                                    for x in walk(t))
               for t, _ in affine(offset).terms)


def _vars_of_vector_loads(alloc: Allocate, v: Var) -> set[Var]:
    """Variables in the indices of loads that move with the vector loop variable."""
    found: set[Var] = set()
    for s in walk_stmts(alloc.body):
        if not isinstance(s, Store):
            continue
        for node in walk(s.value):
            if isinstance(node, Load) and any(
                    isinstance(x, Var) and x == v for i in node.indices for x in walk(i)):
                found |= {x for i in node.indices for x in walk(i) if isinstance(x, Var)}
    return found

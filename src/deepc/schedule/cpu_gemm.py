"""CPU schedule for GEMM-shaped reductions (matmul, dense, gemm, batched matmul): packed B
panels feeding a register-blocked micro-kernel.

    parallel for (batch, j_o) {                  NR columns of B per panel
      alloc Bp[K, NR]; Bp[k, jj] = B(k, j_o*NR + jj)     (contiguous rows, any B layout)
      for i_o {                                  MR rows of A per tile
        acc[MR, NR] = 0                          MR x NR/lanes vector registers
        for k { acc[ii, :] += A[i_o*MR + ii, k] * Bp[k, :] }   (vector FMA, A broadcast)
        C[..] = epilogue(acc) } }

The register tile (MR x NR) comes from cpu_reduction's planner, which sizes it from the
target's vector width and register file. This module adds the packing and the threading:
each thread packs its own B panel once (a transposed B, `trans_b` or `x @ W^T`, becomes
contiguous there) and sweeps the A tiles past it while the panel stays in L2. The panel is
K x NR; when it would not fit half of L2 (`l2_kib` from the target), the tile stays unpacked
rather than thrash, unless B is read transposed (a gather per lane is worse still).
Columns that no register-wide divisor splits (197 attention tokens) run as whole registers
anyway: the panel past the last column is zeros, and unguard_lanes (lane_guard.py) keeps the
accumulation vectorized, storing the last register lane by lane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Load, Var
from deepc.ir.loop import Allocate, For, IfThenElse, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_reduction import TilePlan, plan_reduction_tile, update_stores

MIN_TILES_TO_PACK = 4  # A tiles that reuse one packed panel; below this, packing costs more


@dataclass(frozen=True)
class GemmPlan:
    steps: list[tuple]
    parallel: list[tuple[str, int]]  # loops to fuse and spread over threads, outermost first
    knobs: dict[str, Any]


def plan_gemm(chain: list[For], machine: CpuMachine,
              want: dict[str, Any] | None = None) -> GemmPlan | None:
    """A packed GEMM schedule for the perfect nest `chain` around one accumulator, or None
    when the nest is not a single-reduction contraction with a packable B operand.
    `want` overrides the register tile's knobs; with pack=True the cost heuristics are
    skipped (the nest must still be a GEMM: else ScheduleError)."""
    forced = bool((want or {}).get("pack"))
    plan = _plan(chain, machine, want, forced)
    if plan is None and forced:
        raise ScheduleError("pack=True: the nest is not a GEMM with a packable B operand")
    return plan


def _plan(chain: list[For], machine: CpuMachine, want: dict[str, Any] | None,
          forced: bool) -> GemmPlan | None:
    alloc = chain[-1].body
    if not (isinstance(alloc, Allocate) and alloc.buffer.scope == "local"
            and alloc.buffer.shape == (1,)):
        return None
    red_loops = [x for x in walk_stmts(alloc.body) if isinstance(x, For)]
    if len(red_loops) != 1:
        return None
    k_loop = red_loops[0]
    try:
        tile = plan_reduction_tile(chain, machine, want)
    except ScheduleError:  # a record's vector that does not divide the columns
        padded = plan_reduction_tile(chain, machine, want, pad=True)
        plan = padded and _packed(chain, machine, alloc, k_loop, padded, forced)
        if plan is None:
            raise
        return plan
    if tile is None:
        return None
    if "vector" not in (want or {}) and _pads(chain, tile, machine.lanes(alloc.buffer.dtype),
                                              k_loop.extent, _epilogue_ops(alloc)):
        # full registers over the columns, the last panel's lanes past the end: 197
        # attention columns as 13 x 16 lanes (95% of them useful) rather than scalars
        padded = plan_reduction_tile(chain, machine, want, pad=True)
        plan = padded and _packed(chain, machine, alloc, k_loop, padded, forced)
        if plan is not None:
            return plan
    return _packed(chain, machine, alloc, k_loop, tile, forced)


def _pads(chain: list[For], tile: TilePlan, lanes: int, depth: int, epilogue: int) -> bool:
    """Whether the columns are better run as whole registers with the last one partly past
    the end than as the narrower vector that divides them. Per row of a tile, in vector
    operations: `depth` reduction steps per register, and each output's `epilogue`
    operations, lane by lane in the last register (a requantize of int32 sums: dozens),
    once per register elsewhere. 197 attention columns (13 registers, a plain store) pad;
    24 int8 channels (3 x 8 lanes, a requantize and a residual add) do not."""
    tile_steps = [s for s in tile.steps if s[0] == "tile_reduction"]
    vec_loop = _original(chain, tile_steps[-1][-1]) if tile_steps else None
    if vec_loop is None:
        return False
    extent, nr = vec_loop.extent, tile.knobs["vector"]
    if not (extent > lanes and nr < lanes):
        return False
    registers, tail = -(-extent // lanes), extent % lanes
    padded = depth * registers + (registers - 1 + tail) * epilogue
    narrow = -(-extent // nr) * (depth + epilogue)
    return padded < narrow


def _epilogue_ops(alloc: Allocate) -> int:
    """Expression nodes per output in what the nest stores after its reduction."""
    return sum(1 for s in walk_stmts(alloc.body) if isinstance(s, Store)
               and s.buffer.scope == "global" for _ in walk(s.value))


def _packed(chain: list[For], machine: CpuMachine, alloc: Allocate, k_loop: For,
            tile: TilePlan, forced: bool) -> GemmPlan | None:
    """The tile with its B panels packed, or None where packing does not pay."""
    tile_steps = [s for s in tile.steps if s[0] == "tile_reduction"]
    if len(tile_steps) != 1 or len(tile_steps[0]) != 3:
        return None  # the pair-tiled (blocked conv) shape is not a GEMM
    vec_name = tile_steps[0][2]
    vec_loop = _original(chain, vec_name)
    if vec_loop is None:
        return None
    b_load = _b_operand(alloc, vec_loop.var, k_loop.var)
    if b_load is None or _loads_of(chain[0], b_load.source.name) != 1:
        return None  # B read elsewhere too (an epilogue): its panel would not be K x NR
    outer_names = [n for n, _ in tile.outer]
    vec_o = f"{vec_loop.var.name}_o"
    if vec_o not in outer_names:
        return None
    pos = outer_names.index(vec_o)
    a_tiles = 1
    for _, extent in tile.outer[pos + 1:]:
        a_tiles *= extent
    gather = not _contiguous(b_load, vec_loop.var)
    nr = -(-vec_loop.extent // dict(tile.outer)[vec_o])
    panel_bytes = k_loop.extent * nr * max(itemsize(b_load.source.dtype), 1)
    fits = panel_bytes <= machine.l2_kib * 1024 // 2
    panels = 1
    for _, extent in tile.outer[:pos + 1]:
        panels *= extent
    # threads split the panels; with fewer panels than cores, the default schedule (which
    # also splits the row tiles) keeps them busy instead
    worth = a_tiles >= MIN_TILES_TO_PACK and fits and panels >= min(machine.cores, 2)
    if not forced and not gather and not worth:
        return None
    steps = list(tile.steps)
    steps.append(("pack", b_load.source.name, vec_o, vec_name))
    if vec_loop.extent % tile.knobs["vector"]:
        steps.append(("unguard_lanes", vec_name))
    knobs = {**tile.knobs, "pack": True, "panel": nr}
    return GemmPlan(steps, list(tile.outer[:pos + 1]), knobs)


def _original(chain: list[For], name: str) -> For | None:
    """The loop of `chain` that the tile's loop `name` (maybe `x_i`) was split from."""
    base = name.removesuffix("_i")
    for c in chain:
        if c.var.name in (name, base):
            return c
    return None


def _b_operand(alloc: Allocate, v: Var, k: Var) -> Load | None:
    """The load that moves with both the vector loop and the reduction (the B operand)."""
    found = []
    for s in update_stores(alloc):
        for n in walk(s.value):
            if isinstance(n, Load) and n.source.scope == "global":
                names = {x for i in n.indices for x in walk(i) if isinstance(x, Var)}
                if v in names and k in names:
                    found.append(n)
    if len({ld.source.name for ld in found}) != 1:
        return None
    load = found[0]
    for idx in load.indices:  # plain affine indices: the region of a panel is a box
        if any(t for t, _ in affine(idx).terms if not isinstance(t, Var)):
            return None
    return load


def _loads_of(nest: For, name: str) -> int:
    count = 0
    for s in walk_stmts(nest):
        exprs = [*s.indices, s.value] if isinstance(s, Store) else (
            [s.cond] if isinstance(s, IfThenElse) else [])
        count += sum(isinstance(n, Load) and n.source.name == name
                     for e in exprs for n in walk(e))
    return count


def _contiguous(load: Load, v: Var) -> bool:
    return affine(flat_offset(load.source.shape, load.indices)).coef(v) == 1


__all__ = ["GemmPlan", "plan_gemm"]

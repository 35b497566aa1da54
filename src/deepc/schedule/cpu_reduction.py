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
from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Load, Select, Var
from deepc.ir.loop import Allocate, For, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_tile_blocks import (
    inner_pairs,
    pair_tile,
    reduction_iterations,
    short_tile,
    swept_loop,
)
from deepc.schedule.interior import interior_guard

# independent accumulator chains that keep a vector unit busy through a combining op's
# latency: about 4 cycles, two ops issued per cycle
LATENCY_CHAINS = 8


@dataclass(frozen=True)
class TilePlan:
    steps: list[tuple]
    outer: list[tuple[str, int]]  # the loops left outside the tile, outermost first
    knobs: dict[str, Any]  # the register tile: vector lanes, rows, whether rows go in pairs


def best_factor(extent: int, limit: int) -> int:
    """The largest divisor of extent not above limit, or limit itself when divisors are
    poor (a bounds test then guards the last tile)."""
    if extent <= limit:
        return extent
    best = max(d for d in range(1, limit + 1) if extent % d == 0)
    return best if best * 2 > limit else limit


def vector_width(extent: int, lanes: int, widest: int = 4) -> int:
    """Lanes for the vector loop: four or two registers' worth when they divide the loop (so
    each broadcast operand feeds several vectors), else one register or a divisor below it,
    a power of two unless another divisor is over twice as wide (1000 channels: 8, not 10;
    28 pixels: 14). Never a width that leaves a guarded tail: a bounds test on the lanes
    makes the loop scalar (232 channels run as 29 vectors of 8, not 15 of 16 with a test).
    `widest` caps the registers (CpuMachine.row_vectors: what the register file holds)."""
    # never three registers: LLVM splits a <3L x float> row into element inserts and
    # shuffles (a 256x96x48 matmul at 8 GFLOP/s where 16 lanes reach 238)
    for nvec in (4, 2):
        if nvec <= widest and extent % (nvec * lanes) == 0:
            return nvec * lanes
    if extent <= lanes:
        return extent
    widest = max(d for d in range(1, lanes + 1) if extent % d == 0)
    pow2 = max(d for d in range(1, lanes + 1) if extent % d == 0 and d & (d - 1) == 0)
    return pow2 if 2 * pow2 > widest else widest


def plan_reduction_tile(chain: list[For], machine: CpuMachine,
                        want: dict[str, Any] | None = None, pad: bool = False) -> TilePlan | None:
    """The register tile; `want` overrides the knobs (vector, rows, row_pairs, pair_block:
    how many blocks of the pair loop, row_loop: which loop holds the rows, counted outward
    from the default) and raises ScheduleError where the nest cannot take them. With `pad`
    the vector is one register (or `want`'s) even where it does not divide the loop: the last
    tile's lanes run past the end, which only a packed GEMM can take (cpu_gemm)."""
    want = want or {}
    alloc = chain[-1].body
    if not (isinstance(alloc, Allocate) and alloc.buffer.scope == "local"
            and alloc.buffer.shape == (1,)):
        return None
    acc = alloc.buffer
    lanes = machine.lanes(acc.dtype)
    vec = choose_vector_loop(chain, alloc, lanes)
    if vec is None or lanes < 2:
        return None
    if _row_reduction(chain, alloc, vec):
        return None  # vectors across rows would gather: plan_row_reduction's case
    vector_vars = _vars_of_vector_loads(alloc, vec.var)
    candidates = [c for c in chain if c is not vec and c.extent >= 2
                  and c.var not in vector_vars]
    # a short row loop leaves registers for a wider row; with no rows to share a vector
    # operand (a pool), there is no broadcast to hold either
    widest = machine.row_vectors(rows=candidates[-1].extent) if candidates else 4
    nr = vector_width(vec.extent, lanes, widest)  # 1 for a prime extent above the lanes
    if pad:
        nr = min(lanes, vec.extent)
    if "vector" in want:
        nr = want["vector"]
        if not 2 <= nr <= vec.extent or (vec.extent % nr and not pad):
            raise ScheduleError(f"vector={nr} does not divide the vector loop"
                                f" {vec.var.name} ({vec.extent})")
    if not candidates:
        # every vector operand moves with every loop (a depthwise conv): a tile along a loop
        # that some vector operand (the weights) ignores still reuses that one from a
        # register, and its independent accumulators hide the multiply-add latency
        shared = _vars_of_each_vector_load(alloc, vec.var)
        candidates = [c for c in chain if c is not vec and c.extent >= 2
                      and any(c.var not in vs for vs in shared)]
    # accumulators held in registers, shared between the vectors of a row and the rows
    budget = max(machine.accumulator_registers // -(-nr // lanes), 1)
    if not candidates and not _guarded_reads(alloc):
        # no operand to share at all (a pool): rows of independent accumulators still pay,
        # as one accumulator's chain of max or add runs at the op's latency, not its
        # throughput (a 3x3 max pool: 19 GFLOP/s with one, its NaN-aware max 4 ops deep);
        # enough of them to cover that latency, no more. Not over guarded reads (a pool
        # over padding): each row's read then branches, which costs more than the
        # latency hidden (resnet18's padded max pool: 95 -> 210 us with 8 rows), unless the
        # tests are bounds that version_interior lifts out of the tiles inside the image
        candidates = [c for c in chain if c is not vec and c.extent >= 2]
        budget = min(budget, LATENCY_CHAINS)
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
    tile_i, pair = None, None
    if not candidates and (want.get("rows", 1) != 1 or want.get("row_pairs")):
        raise ScheduleError("the nest has no loop to tile rows on: rows must be 1")
    row_loop = want.get("row_loop", 0)
    if row_loop and (type(row_loop) is not int or not 0 < row_loop < len(candidates)):
        raise ScheduleError(f"row_loop={row_loop!r}: the nest has {len(candidates)} loops to"
                            " tile rows on (0 is the innermost)")
    if candidates:
        # the innermost loop that the vector operand ignores, unless a candidate asks for
        # one further out (the rows of a conv's tile along its height, not its width)
        tile = candidates[-1 - row_loop]
        # a short prime row (13 pixels) is better held whole, a little over budget, than
        # tiled with a guarded tail
        mr = best_factor(tile.extent, budget)
        if tile.extent % mr and tile.extent <= budget + budget // 4:
            mr = tile.extent
        pair = _pair_loop(chain, vec, tile, alloc)
        half = best_factor(tile.extent, budget // 2)
        pairs = want.get("row_pairs")
        # a candidate may take more blocks of the pair loop than two (125 blocks of 8
        # channels: 5 x 5 rows share each broadcast five times); that implies pairs
        block = want.get("pair_block", 2)
        if type(block) is not int or block < 2:
            raise ScheduleError(f"pair_block={block!r} must be an integer of 2 or more")
        if block != 2:
            pairs = True
        if pairs is None:
            pairs = not (pair is None or nr != lanes or pair.extent % 2 or tile.extent % half
                         or half < 4)
        elif pairs and (pair is None or pair.extent % block):
            raise ScheduleError(f"row_pairs=True: the nest has no loop that {block} divides"
                                " to take rows in blocks of")
        if pairs and "pair_block" not in want and "rows" not in want:
            # more blocks than two only while the vector operand's blocks that a tile reads
            # over its whole reduction stay in L1 from one tile to the next (squeezenet's
            # 16-channel expand convs: 4 x 9 KiB); further out, the extra vector loads per
            # step cost more than the broadcasts saved (resnet18's 56-pixel convs: 4 x 4
            # rows 941 us, 2 x 8 884 us)
            panel = reduction_iterations(alloc) * nr * max(itemsize(acc.dtype), 1)
            widest = max(machine.l1d_kib * 1024 // max(panel, 1), 2)
            block, mr = pair_tile(pair.extent, tile.extent, budget, widest, machine)
            mr = mr or half
        elif pairs:
            mr = half if block == 2 else best_factor(tile.extent, max(budget // block, 1))
        elif (want.get("row_pairs") is None and "rows" not in want and pair is not None
              and nr == lanes and (short := short_tile(
                  pair.extent, tile.extent, budget, tile.extent / -(-tile.extent // mr),
                  machine))):
            # rows whose factors fill few registers: blocks of the pair loop fill them, the
            # last tile of rows short (guarded by version_rows like any)
            pairs, (block, mr) = True, short
        else:
            pair = None
        mr = want.get("rows", mr)
        if not 1 <= mr <= tile.extent:
            raise ScheduleError(f"rows={mr} does not fit the tile loop {tile.var.name}"
                                f" ({tile.extent})")
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
        if pair is not None:
            pair_i = _split_pair(steps, names, pair.var.name, tile_i, block)
    order = [n for n, _ in names]
    vec_o, tile_o = vec_i.removesuffix("_i") + "_o", (tile_i or "").removesuffix("_i") + "_o"
    if vec_o in order and tile_o in order and order.index(tile_o) < order.index(vec_o):
        # panels of the vector operand (B columns, conv weights) stay in cache while the
        # tiles of the other operand stream past them
        steps.append(("reorder", vec_o, tile_o))
        a, b = order.index(tile_o), order.index(vec_o)
        names[a], names[b] = names[b], names[a]
    tile_names = [tile_i, vec_i] if tile_i else [vec_i]
    if pair is not None and inner_pairs(block, mr, machine):
        steps.append(("reorder", tile_i, pair_i))
        tile_names.insert(1, pair_i)
    elif pair is not None:
        tile_names.insert(0, pair_i)
    outer = [(n, e) for n, e in names if n not in tile_names]
    sweep = want.get("sweep", False)
    if sweep:
        swept = swept_loop(outer, alloc)
        if swept is None:
            raise ScheduleError("sweep=True needs an outer loop of two or more iterations"
                                " and two reduction loops around the tile")
        steps += [("tile_reduction", swept[0], *tile_names), ("reorder", *swept)]
        outer = outer[:-1]
    else:
        steps.append(("tile_reduction", *tile_names))
    for name in tile_names[:-1]:
        steps.append(("unroll", name))
    steps.append(("vectorize", vec_i))
    if tile_i and tile_i.endswith("_i") and tile.extent % mr and not sweep:
        # the last tile's rows run past the end: test them once per tile (row_guard)
        steps.append(("version_rows", tile_o, tile_i))
    knobs = {"vector": nr, "rows": mr if tile_i else 1, "row_pairs": pair is not None,
             **({"pair_block": block} if pair is not None and block != 2 else {}),
             **({"row_loop": row_loop} if row_loop else {}), **({"sweep": True} if sweep else {})}
    return TilePlan(steps, outer, knobs)


def _pair_loop(chain: list[For], vec: For, tile: For, alloc: Allocate) -> For | None:
    """An output loop that the vector operand moves with and the broadcast operand does not
    (the output-channel blocks of a blocked conv): two of its iterations in the tile share
    each broadcast, so a 2 x (budget/2) tile loads fewer operands per multiply-add."""
    loads = update_loads(alloc)
    var_sets = [{x for i in ld.indices for x in walk(i) if isinstance(x, Var)} for ld in loads]
    moving = set().union(*(vs for vs in var_sets if vec.var in vs))
    still = set().union(*(vs for vs in var_sets if vec.var not in vs))
    if not still:
        return None
    found = [c for c in chain if c is not vec and c is not tile and c.extent >= 2
             and c.var in moving and c.var not in still]
    return found[-1] if found else None


def _split_pair(steps: list[tuple], names: list[tuple[str, int]], pair: str,
                tile_i: str, block: int = 2) -> str:
    """Split `pair` by `block` and move its inner loop just outside the tile loop."""
    steps.append(("split", pair, block))
    i = [n for n, _ in names].index(pair)
    extent = names[i][1]
    names[i:i + 1] = [(f"{pair}_o", extent // block), (f"{pair}_i", block)]
    order = [n for n, _ in names]
    p, t = order.index(f"{pair}_i"), order.index(tile_i)
    if t != p + 1:
        steps.append(("reorder", *order[p + 1:t], f"{pair}_i"))
        moved = names.pop(p)
        names.insert(t - 1, moved)
    return f"{pair}_i"


def _guarded_reads(alloc: Allocate) -> bool:
    """Whether an accumulator update reads through a select (a test per read) that
    version_interior cannot drop inside the image."""
    return any(isinstance(n, Select) and any(isinstance(x, Load) for x in walk(n))
               and not interior_guard(n)
               for s in update_stores(alloc) for n in walk(s.value))


def update_stores(alloc: Allocate) -> list[Store]:
    """The accumulator updates inside the reduction loops: the work that the tile shapes.
    (The epilogue's loads, a bias or a residual, run once per output and do not count.)"""
    return [s for loop in walk_stmts(alloc.body) if isinstance(loop, For)
            for s in walk_stmts(loop.body) if isinstance(s, Store) and s.buffer == alloc.buffer]


def choose_vector_loop(chain: list[For], alloc: Allocate, lanes: int) -> For | None:
    """The output loop to run as vector lanes: one along which every load is contiguous or
    invariant (no gathers), preferring loops that fill the lanes, then inner ones."""
    loads = update_loads(alloc)
    scored = [((_gathers(loads, c.var) == 0, vector_width(c.extent, lanes) * 2 >= lanes, k), c)
              for k, c in enumerate(chain) if c.extent >= 2]
    return max(scored, key=lambda sc: sc[0])[1] if scored else None


def plan_row_reduction(chain: list[For], machine: CpuMachine,
                       width: int | None = None) -> TilePlan | None:
    """Partial accumulators across the contiguous reduction loop (rfactor) for a reduction
    whose output loops would all gather: softmax's max and sum, LayerNorm's moments over
    the last axis. Two registers' worth of lanes where the loop is long enough, so two
    vector chains hide the latency of the combining op; `width` (a record's) overrides."""
    alloc = chain[-1].body
    if not (isinstance(alloc, Allocate) and alloc.buffer.scope == "local"
            and alloc.buffer.shape == (1,)):
        return None
    lanes = machine.lanes(alloc.buffer.dtype)
    vec = choose_vector_loop(chain, alloc, lanes)
    if lanes < 2 or (vec is not None and not _row_reduction(chain, alloc, vec)):
        return None
    loops = [x for x in walk_stmts(alloc.body) if isinstance(x, For)]
    if not loops or not _contiguous_reduction(alloc) or not isinstance(loops[-1].body, Store):
        return None
    extent = loops[-1].extent
    if not isinstance(extent, int) or extent < lanes:
        return None
    if width is None:
        width = 2 * lanes if extent >= 4 * lanes else lanes
    elif not 2 <= width <= extent:
        raise ScheduleError(f"vector={width} does not fit the reduction loop"
                            f" {loops[-1].var.name} ({extent})")
    return TilePlan([("rfactor", loops[-1].var.name, width)],
                    [(c.var.name, c.extent) for c in chain], {"vector": width})


def _row_reduction(chain: list[For], alloc: Allocate, vec: For) -> bool:
    """Whether the vector loop would gather, every operand moves with it (no loop for the
    rows of a register tile, as a GEMM's A has: there packing fixes the gather) and the
    reduction loop reads contiguously instead."""
    if not _gathers(update_loads(alloc), vec.var) or not _contiguous_reduction(alloc):
        return False
    vector_vars = _vars_of_vector_loads(alloc, vec.var)
    return not any(c is not vec and c.extent >= 2 and c.var not in vector_vars for c in chain)


def update_loads(alloc: Allocate) -> list[Load]:
    """The loads of the accumulator updates (update_stores): the operands the tile shares."""
    return [n for s in update_stores(alloc) for n in walk(s.value) if isinstance(n, Load)]


def _gathers(loads: list[Load], var: Var) -> int:
    """How many of `loads` would be gathered lane by lane along `var`."""
    count = 0
    for load in loads:
        offset = flat_offset(load.source.shape, load.indices)
        if any(isinstance(x, Var) and x == var for x in walk(offset)):
            count += affine(offset).coef(var) != 1 or _opaque_use(offset, var)
    return count


def _contiguous_reduction(alloc: Allocate) -> bool:
    """Whether the innermost reduction loop walks some operand contiguously and gathers none."""
    loops = [x for x in walk_stmts(alloc.body) if isinstance(x, For)]
    if not loops:
        return False
    r = loops[-1].var
    loads = update_loads(alloc)
    moving = [ld for ld in loads if any(isinstance(x, Var) and x == r
                                        for i in ld.indices for x in walk(i))]
    return bool(moving) and _gathers(moving, r) == 0


def _opaque_use(offset, var: Var) -> bool:  # type: ignore[no-untyped-def]
    """Whether `var` occurs inside a non-affine part of the offset (a // or %)."""
    return any(isinstance(t, Var) is False and any(isinstance(x, Var) and x == var
                                                    for x in walk(t))
               for t, _ in affine(offset).terms)


def _vars_of_each_vector_load(alloc: Allocate, v: Var) -> list[set[Var]]:
    """The variables in the indices of each load that moves with the vector loop variable."""
    found: list[set[Var]] = []
    for s in update_stores(alloc):
        for node in walk(s.value):
            if isinstance(node, Load):
                names = {x for i in node.indices for x in walk(i) if isinstance(x, Var)}
                if v in names:
                    found.append(names)
    return found


def _vars_of_vector_loads(alloc: Allocate, v: Var) -> set[Var]:
    """Variables in the indices of loads that move with the vector loop variable."""
    return set().union(*_vars_of_each_vector_load(alloc, v))

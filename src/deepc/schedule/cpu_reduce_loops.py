"""Knobs over the loops around a register tile: which reduction loop runs innermost and how far
it is unrolled, which outer loop runs innermost; turns a tuning candidate's knobs into steps.

The default keeps the reduction loops in the order lowering gave them and unrolls none:

    for rk0 in 0..3 { for rk1 in 0..3 { for ri in 0..16 { <tile of multiply-adds> } } }
reduce_inner=1, unroll=3 ->
    reorder(rk0, ri, rk1); unroll(rk1)
    for rk0 in 0..3 { for ri in 0..16 { unrolled for rk1 in 0..3 { <tile> } } }
unroll=4 (of ri, a divisor of its extent) ->
    split(ri, 4); unroll(ri_i)
    for rk0 { for rk1 { for ri_o in 0..4 { unrolled for ri_i in 0..4 { <tile> } } } }

Which loop is innermost decides which operand walks contiguously and how far apart two
consecutive broadcasts are; unrolling gives the scheduler independent loads to hoist. Neither
changes the sum's order within one accumulator by more than a reassociation of the reduction
loops (the tuner checks each candidate's outputs against the default's).
"""

from __future__ import annotations

from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.expr import Load
from deepc.ir.loop import Allocate, For, Stmt, walk_stmts
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize
from deepc.schedule.cpu_reduction import update_stores

MAX_UNROLL = 16  # more copies of a tile of multiply-adds only lengthen compiles
DEFAULTS = {"reduce_inner": 0, "unroll": 1}


def reduction_chain(alloc: Stmt) -> list[For]:
    """The reduction loops around the accumulator's update in `alloc` (the accumulator's
    allocation), outermost first, while they nest perfectly (a guard or a second statement
    ends the chain)."""
    if not isinstance(alloc, Allocate):
        return []
    updates = update_stores(alloc)
    if not updates:
        return []
    first = next((x for x in walk_stmts(alloc.body) if isinstance(x, For)), None)
    chain = [first] if first is not None else []
    while chain and isinstance(chain[-1].body, For):
        chain.append(chain[-1].body)
    if not chain or not any(s in updates for s in walk_stmts(chain[-1].body)):
        return []
    return chain


def plan_reduce_loops(alloc: Stmt, want: dict[str, Any]) -> tuple[list[tuple], dict[str, Any]]:
    """The steps and the knobs (only those that differ from the default) that `want`'s
    `reduce_inner` and `unroll` ask of the reduction loops in `alloc`; ScheduleError when
    the loops cannot take them."""
    inner = want.get("reduce_inner", DEFAULTS["reduce_inner"])
    factor = want.get("unroll", DEFAULTS["unroll"])
    if inner == DEFAULTS["reduce_inner"] and factor == DEFAULTS["unroll"]:
        return [], {}
    for name, value in (("reduce_inner", inner), ("unroll", factor)):
        if type(value) is not int or value < 0:
            raise ScheduleError(f"{name}={value!r} must be a non-negative integer")
    chain = reduction_chain(alloc)
    movable = [c for c in chain if c.extent >= 2]
    if not movable:
        raise ScheduleError("reduce_inner and unroll need reduction loops of two or more"
                            " iterations in one perfect nest; this nest has none")
    if inner >= len(movable):
        raise ScheduleError(f"reduce_inner={inner}: the nest has {len(movable)} reduction"
                            " loops to choose from (0 keeps the innermost)")
    steps: list[tuple] = []
    last = movable[-1 - inner]
    if inner:
        order = [c.var.name for c in chain if c is not last] + [last.var.name]
        steps.append(("reorder", *order))
    knobs: dict[str, Any] = {"reduce_inner": inner} if inner else {}
    if factor != 1:
        if not 2 <= factor <= min(last.extent, MAX_UNROLL) or last.extent % factor:
            raise ScheduleError(f"unroll={factor} does not divide the innermost reduction loop"
                                f" {last.var.name} ({last.extent}) within {MAX_UNROLL}")
        if factor < last.extent:
            steps += [("split", last.var.name, factor), ("unroll", f"{last.var.name}_i")]
        else:
            steps.append(("unroll", last.var.name))
        knobs["unroll"] = factor
    return steps, knobs


def plan_outer_order(outer: list[tuple[str, int]], want: dict[str, Any]
                     ) -> tuple[list[tuple], list[tuple[str, int]], dict[str, Any]]:
    """The loops outside a register tile (outermost first) with the one that `want`'s
    `outer_inner` names moved innermost, counted outward from the innermost (0: as they
    are): its steps, the new order and the knob where it is not the default. Which loop
    runs innermost decides which operand a tile reuses from cache: the output channel
    blocks innermost sweep one input tile past every block of weights.

        for co_o { for h { for w_o { <tile> } } }
    outer_inner=2 ->
        reorder(h, w_o, co_o)
        for h { for w_o { for co_o { <tile> } } }
    """
    inner = want.get("outer_inner", 0)
    if inner == 0:
        return [], outer, {}
    movable = [(n, e) for n, e in outer if e >= 2]
    if type(inner) is not int or not 0 < inner < len(movable):
        raise ScheduleError(f"outer_inner={inner!r}: the tile has {len(movable)} loops"
                            " around it to choose from (0 keeps the innermost)")
    last = movable[-1 - inner]
    order = [x for x in outer if x != last] + [last]
    return [("reorder", *(n for n, _ in order))], order, {"outer_inner": inner}


def plan_reduce_blocks(alloc: Stmt, outer: list[tuple[str, int]], want: dict[str, Any]
                       ) -> tuple[list[tuple], dict[str, Any]]:
    """The step and knob that `want`'s `reduce_blocks` asks of a register tile's nest: the
    outermost reduction loop (after `reduce_inner`'s reorder) in that many blocks, the loop
    over blocks around the loops outside the tile (`outer`, outermost first), so one block's
    weights stay in cache while every output passes over them (schedule.reduce_blocks).

        for co_o { for h { <tile: for rc in 0..32 { .. }> } }
    reduce_blocks=4 ->
        block_reduction(co_o, rc, 4)
        for rc_b in 0..4 { for co_o { for h { <tile: for rc in 0..8 { .. }> } } }
    """
    blocks = want.get("reduce_blocks", 1)
    if blocks == 1:
        return [], {}
    if type(blocks) is not int or blocks < 2:
        raise ScheduleError(f"reduce_blocks={blocks!r} must be an integer of 1 or more")
    if not outer:
        raise ScheduleError("reduce_blocks: the tile has no loop around it to sweep per block")
    chain = reduction_chain(alloc)
    movable = [c for c in chain if c.extent >= 2]
    inner = want.get("reduce_inner", DEFAULTS["reduce_inner"])
    if not movable or inner >= len(movable):
        raise ScheduleError("reduce_blocks needs a reduction loop of two or more iterations"
                            " in one perfect nest")
    last = movable[-1 - inner]
    order = [c for c in movable if c is not last] + [last] if inner else movable
    target = order[0]
    if target is last and want.get("unroll", DEFAULTS["unroll"]) != 1:
        raise ScheduleError(f"reduce_blocks: {target.var.name} is the loop that unroll splits")
    if target.extent % blocks:
        raise ScheduleError(f"reduce_blocks={blocks} does not divide the reduction loop"
                            f" {target.var.name} ({target.extent})")
    return ([("block_reduction", outer[0][0], target.var.name, blocks)],
            {"reduce_blocks": blocks})


def weight_bytes(chain: list[For]) -> int:
    """The size of the largest buffer that the accumulator's updates (under the output loops
    `chain`) read the same for every output along the loop outside the innermost (of more
    than one iteration): a conv's or a matmul's weights, which each image row or matrix row
    passes over whole. Past the L2 cache no such pass leaves them cached for the next; 0
    where no operand is shared so (a pool's input moves with every output)."""
    alloc = chain[-1].body if chain else None
    rows = [c for c in chain[:-1] if c.extent != 1]  # a pool's 1x1 output loops do not count
    if not rows or not isinstance(alloc, Allocate):
        return 0
    row = rows[-1].var
    sizes = [ld.source.size * itemsize(ld.source.dtype) for s in update_stores(alloc)
             for ld in walk(s.value) if isinstance(ld, Load) and ld.source != alloc.buffer
             and not any(x == row for i in ld.indices for x in walk(i))]
    return max(sizes, default=0)


__all__ = ["DEFAULTS", "plan_outer_order", "plan_reduce_blocks", "plan_reduce_loops",
           "reduction_chain", "weight_bytes"]

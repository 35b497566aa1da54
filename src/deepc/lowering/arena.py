"""Packing buffers with known lifetimes into one arena: offsets, size, and the lower bound.

A block is live from the step that writes it to the last step that reads it, both included;
two blocks whose lifetimes meet must not overlap. No packing can use less than the largest
total of simultaneously live bytes (`peak_bytes`). Finding the best packing is NP-hard
(dynamic storage allocation), so `pack` runs a few greedy placements and keeps the smallest:
large blocks first (they fix the arena's shape; small ones fill holes), in address order or
into the tightest hole, and the online order (by start step) into the tightest hole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    start: int  # first step at which the block is live
    end: int  # last step at which it is live
    size: int  # bytes, already aligned

    def meets(self, other: Block) -> bool:
        return self.start <= other.end and other.start <= self.end


def peak_bytes(blocks: Sequence[Block]) -> int:
    """The largest total size of blocks live at one step: a lower bound on any packing."""
    change: dict[int, int] = {}
    for b in blocks:
        change[b.start] = change.get(b.start, 0) + b.size
        change[b.end + 1] = change.get(b.end + 1, 0) - b.size
    peak = live = 0
    for step in sorted(change):
        live += change[step]
        peak = max(peak, live)
    return peak


Placement = Callable[[list[tuple[int, int]], int], int]


def lowest_fit(taken: list[tuple[int, int]], size: int) -> int:
    """The lowest offset where `size` bytes fit between the (offset, end) ranges taken."""
    pos = 0
    for off, end in taken:
        if off - pos >= size:
            return pos
        pos = max(pos, end)
    return pos


def tightest_fit(taken: list[tuple[int, int]], size: int) -> int:
    """The start of the smallest hole that holds `size` bytes, else the top."""
    best, best_gap, pos = None, None, 0
    for off, end in taken:
        gap = off - pos
        if gap >= size and (best_gap is None or gap < best_gap):
            best, best_gap = pos, gap
        pos = max(pos, end)
    return pos if best is None else best


STRATEGIES: tuple[tuple[Callable[[Block], tuple[int, ...]], Placement], ...] = (
    (lambda b: (-b.size, b.start), lowest_fit),
    (lambda b: (-b.size, b.start), tightest_fit),
    (lambda b: (-(b.end - b.start), -b.size), tightest_fit),
    (lambda b: (b.start, -b.size), tightest_fit),
)


def pack(blocks: Sequence[Block]) -> tuple[list[int], int]:
    """Offsets for `blocks` (in their order) and the arena size, the best of STRATEGIES."""
    best: tuple[list[int], int] | None = None
    for key, place in STRATEGIES:
        offsets, size = _pack_with(blocks, key, place)
        if best is None or size < best[1]:
            best = (offsets, size)
        if best[1] == peak_bytes(blocks):
            break
    return best if best is not None else ([], 0)


def _pack_with(blocks: Sequence[Block], key: Callable[[Block], tuple[int, ...]],
               place: Placement) -> tuple[list[int], int]:
    offsets = [0] * len(blocks)
    placed: list[int] = []
    top = 0
    for k in sorted(range(len(blocks)), key=lambda k: key(blocks[k])):
        b = blocks[k]
        taken = sorted((offsets[j], offsets[j] + blocks[j].size) for j in placed
                       if blocks[j].meets(b))
        offsets[k] = place(taken, b.size)
        placed.append(k)
        top = max(top, offsets[k] + b.size)
    return offsets, top

"""The shape of a CPU register tile across its loops: how many blocks of the output-channel
loop share each broadcast, and which outer loop may sweep inside the reduction loops."""

from __future__ import annotations

from deepc.ir.loop import Allocate, For, walk_stmts


def pair_tile(pairs: int, rows: int, budget: int, widest: int) -> tuple[int, int]:
    """Blocks of the pair loop and rows of the tile loop (each dividing its loop) for a tile
    of at most `budget` accumulators that loads the fewest operands per multiply-add: a
    block x rows tile loads `block` vectors and `rows` broadcasts for block * rows of them.
    Squeezenet's 55-pixel rows over 4 blocks of 16 channels: 2 x 11 loads 13 operands per
    22 (207 GFLOP/s), 4 x 5 loads 9 per 20 (262 GFLOP/s). Two blocks stay unless another
    saves a tenth of the loads, with registers left for its vectors (mobilenet_v2's 112-pixel
    expand conv: 3 x 8 accumulators and 3 vectors 257 us, 2 x 8 207 us); never more blocks
    than rows (each block's vectors stream from further out in cache than the broadcasts)."""
    def fit(block: int) -> int:  # past two blocks, the block's vectors need registers too
        most = budget // block - (block > 2)
        return max((d for d in range(2, most + 1) if rows % d == 0), default=0)

    def cost(block: int) -> float:
        return (block + fit(block)) / (block * fit(block))

    best = 2
    for block in range(3, min(budget // 2, widest) + 1):
        if (pairs % block == 0 and fit(block) >= block
                and (not fit(best) or cost(block) < 0.9 * cost(best))):
            best = block
    return best, fit(best)  # 0: no divisor of the rows fits (the caller's rows stand)


def short_tile(pairs: int, rows: int, budget: int, held: float) -> tuple[int, int] | None:
    """Blocks of the pair loop (dividing it) and rows of the tile loop (the last tile may be
    short) for a tile that keeps at least 1.5 times the `held` accumulators busy that the
    rows alone do, or None. For rows that no good factor divides: squeezenet's classifier,
    63 blocks of 16 channels over 13-pixel rows, holds 13 of 24 accumulators; 3 blocks x 7
    rows (the last tile 6) keep 19.5 busy on average: 0.83x its time."""
    best: tuple[float, int, int] | None = None
    for block in range(2, budget // 2 + 1):
        most = budget // block - (block > 2)  # past two blocks, their vectors need registers
        if pairs % block or most < 2:
            continue
        tiles = -(-rows // most)
        busy = block * rows / tiles
        if busy >= 1.5 * held and (best is None or busy > best[0]):
            best = (busy, block, -(-rows // tiles))
    return best[1:] if best else None


def reduction_loops(alloc: Allocate) -> list[For]:
    """The perfect nest of reduction loops around the accumulator's update, outermost first."""
    loops: list[For] = []
    loop = next((x for x in walk_stmts(alloc.body) if isinstance(x, For)), None)
    while isinstance(loop, For):
        loops.append(loop)
        loop = loop.body
    return loops


def reduction_iterations(alloc: Allocate) -> int:
    count = 1
    for loop in reduction_loops(alloc):
        count *= loop.extent if isinstance(loop.extent, int) else 1
    return count


def swept_loop(outer: list[tuple[str, int]], alloc: Allocate) -> list[str] | None:
    """The reorder that sweeps the loop just outside the tile (a conv's output rows) inside
    the outermost reduction loop (its input-channel blocks), or None where the nest has no
    such pair of loops:

        for h { tile acc; for rcb { for rk { <tile> } } }
    ->
        tile acc[h]; for rcb { for h { for rk { <tile> } } }

    Each block of weights then serves every row right after it arrives, so the weights
    stream in evenly through the whole reduction, not in a burst at the first row."""
    reduction = reduction_loops(alloc)
    if not outer or outer[-1][1] < 2 or len(reduction) < 2 or reduction[0].extent < 2:
        return None
    return [outer[-1][0], *(r.var.name for r in reduction[1:])]

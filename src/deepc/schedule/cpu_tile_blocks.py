"""The shape of a CPU register tile across its loops: how many blocks of the output-channel
loop share each broadcast, and which outer loop may sweep inside the reduction loops."""

from __future__ import annotations

from typing import Any

from deepc.ir.loop import Allocate, For, Stmt, walk_stmts
from deepc.schedule.cpu_machine import CpuMachine

MAX_STEP_UNROLL = 16  # reduction steps a schedule unrolls whole (cpu_reduce_loops' bound)


def block_rows(block: int, budget: int, machine: CpuMachine) -> int:
    """The most rows a tile of `block` blocks of the pair loop may take. Where FMAs broadcast
    from memory (AVX-512), past two blocks the blocks' vectors need registers too. Where
    each broadcast is a register of its own (AVX2, NEON), the tile holds one operand set
    across its inner loop, the smaller of the blocks' vectors and the rows' broadcasts (see
    inner_pairs), and streams the other through one more register: all beside the
    accumulators. On 16 AVX2 registers 4 blocks x 3 rows fit (12 + 3 + 1); a 3x3 conv of
    squeezenet in that tile took 282 us where 1 x 9 took 321."""
    if machine.broadcast_operand:
        return budget // block - (block > 2)
    rows = budget // block
    while rows > 0 and block * rows + min(block, rows) + 1 > machine.vector_registers:
        rows -= 1
    return rows


def inner_pairs(block: int, rows: int, machine: CpuMachine) -> bool:
    """Whether a tile of `block` blocks x `rows` rows runs its blocks inside its rows. The
    inner loop's operands stay in registers across the outer one (rows inside: every row's
    broadcast; blocks inside: every block's vectors), so where broadcasts take registers
    and the rows' do not fit beside the accumulators, the blocks go inside: on 16 AVX2
    registers a 2 x 6 tile holding 6 broadcasts spilled 6 of 12 accumulators a step."""
    return (not machine.broadcast_operand and block < rows
            and block * rows + rows + 1 > machine.vector_registers)


def pair_tile(pairs: int, rows: int, budget: int, widest: int,
              machine: CpuMachine) -> tuple[int, int]:
    """Blocks of the pair loop and rows of the tile loop (each dividing its loop) for a tile
    of at most `budget` accumulators that loads the fewest operands per multiply-add: a
    block x rows tile loads `block` vectors and `rows` broadcasts for block * rows of them.
    Squeezenet's 55-pixel rows over 4 blocks of 16 channels: 2 x 11 loads 13 operands per
    22 (207 GFLOP/s), 4 x 5 loads 9 per 20 (262 GFLOP/s). Two blocks stay unless another
    saves a tenth of the loads, with registers left for its vectors (mobilenet_v2's 112-pixel
    expand conv: 3 x 8 accumulators and 3 vectors 257 us, 2 x 8 207 us); never more blocks
    than rows (each block's vectors stream from further out in cache than the broadcasts)."""
    def fit(block: int) -> int:
        most = block_rows(block, budget, machine)
        return max((d for d in range(2, most + 1) if rows % d == 0), default=0)

    def cost(block: int) -> float:
        return (block + fit(block)) / (block * fit(block))

    best = 2
    for block in range(3, min(budget // 2, widest) + 1):
        if (pairs % block == 0 and fit(block) >= block
                and (not fit(best) or cost(block) < 0.9 * cost(best))):
            best = block
    return best, fit(best)  # 0: no divisor of the rows fits (the caller's rows stand)


def short_tile(pairs: int, rows: int, budget: int, held: float,
               machine: CpuMachine) -> tuple[int, int] | None:
    """Blocks of the pair loop (dividing it) and rows of the tile loop (the last tile may be
    short) for a tile that keeps at least 1.5 times the `held` accumulators busy that the
    rows alone do, or None. For rows that no good factor divides: squeezenet's classifier,
    63 blocks of 16 channels over 13-pixel rows, holds 13 of 24 accumulators; 3 blocks x 7
    rows (the last tile 6) keep 19.5 busy on average: 0.83x its time."""
    best: tuple[float, int, int] | None = None
    for block in range(2, budget // 2 + 1):
        most = block_rows(block, budget, machine)
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


def step_unroll(knobs: dict[str, Any], alloc: Stmt, machine: CpuMachine) -> int | None:
    """The innermost reduction loop's extent where the schedule should unroll it whole (its
    `unroll` knob), or None to leave it to LLVM: when one step's operands (the block's
    vectors, and the rows' broadcasts where FMAs cannot read them from memory) outnumber
    the registers the tile's accumulators leave. LLVM then unrolls the loop by two and
    schedules both steps' broadcasts ahead of their FMAs, and the accumulators spill: on a
    16-register AVX2 core, squeezenet's 1 x 9 tile of a 3x3 conv stored and reloaded 3
    accumulators per 18 FMAs (537 us; the 8 steps unrolled whole, 321 us). Never where
    AVX-512 FMAs broadcast from memory: there one step's vectors fit beside any tile of
    the accumulator budget."""
    if not isinstance(alloc, Allocate):
        return None
    loops = [x for x in reduction_loops(alloc) if isinstance(x.extent, int) and x.extent >= 2]
    if not loops or loops[-1].extent > MAX_STEP_UNROLL:
        return None
    lanes = machine.lanes(alloc.buffer.dtype)
    vectors = -(-int(knobs["vector"]) // lanes)
    block = int(knobs.get("pair_block", 2)) if knobs.get("row_pairs") else 1
    rows = int(knobs.get("rows", 1))
    accumulators = vectors * block * rows
    if accumulators > machine.accumulator_registers:
        # a short row held whole past the budget (13 pixels) leaves one register spare:
        # unrolled, its steps' loads spilled 5 accumulators; LLVM leaves its body rolled
        return None
    operands = machine.operand_registers(vectors * block, rows)
    return loops[-1].extent if operands > machine.vector_registers - accumulators else None

"""Default GPU schedules: a kernel's loop IR to launchable stages bound to blocks and threads.

A lowered kernel is a list of stages (loop nests) that may pass values through global
intermediates. Every stage becomes its own launch, so a stage reads what the previous one
wrote without a grid-wide barrier; the intermediates become extra pointer parameters
("scratch") that the packager places in the device arena.

Within a stage the outer loops that every global store indexes by (one output element per
iteration: elementwise maps, and the spatial loops of conv/matmul/pool/reductions) are fused
into one loop, split by a block size the target allows, and bound to blockIdx.x/threadIdx.x,
so each thread computes one output element with its reduction in registers. A stage with
no such loop runs on one thread (a correct but slow fallback, e.g. recurrent cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.expr import Load, Var
from deepc.ir.loop import Allocate, Buffer, For, PrimFunc, Seq, Stmt, Store, loops, walk_stmts
from deepc.ir.tensor import walk
from deepc.schedule.gpu_block import block_schedule
from deepc.schedule.gpu_build import launch
from deepc.schedule.gpu_chain import parallel_chain, uses
from deepc.schedule.gpu_gemm_knobs import GEMM_KNOBS, tile_from_knobs, tile_knobs
from deepc.schedule.gpu_gemm_match import GemmParts, GemmTile, choose_tile, match_gemm
from deepc.schedule.gpu_pad import fold_pads
from deepc.schedule.gpu_warp import WARPS_PER_BLOCK, match_warp
from deepc.schedule.schedule import Schedule
from deepc.schedule.stmt_rewrite import map_stmt
from deepc.target.spec import Target

REGISTER_TILE = 8  # outputs per thread in reductions with shared loads


@dataclass(frozen=True)
class Stage:
    """One launch: `func` (the stage's loop nest with `schedule` applied) takes the kernel's
    parameters, then `scratch`; `knobs` are the schedule's tunable arguments by name."""

    func: PrimFunc
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    schedule: Schedule
    note: str = ""  # a human-readable summary for `deepc bench --profile`
    knobs: dict[str, Any] = field(default_factory=dict)
    base: PrimFunc | None = None  # the unscheduled stage: `schedule.apply(base)` is `func`


def scheduled(func: PrimFunc, sch: Schedule, note: str, knobs: dict[str, Any]) -> Stage:
    """The stage `sch` makes of `func`, launched as its bound loops say."""
    out = sch.apply(func)
    grid, block = launch(out)
    return Stage(out, grid, block, sch, note, knobs, func)


def split_stages(func: PrimFunc) -> tuple[list[Stmt], tuple[Buffer, ...]]:
    """The stages of a kernel and the global intermediates allocated around them."""
    scratch: list[Buffer] = []
    body = func.body
    while isinstance(body, Allocate) and body.buffer.scope == "global":
        scratch.append(body.buffer)
        body = body.body
    body = _hoist_global(body, scratch)
    stmts = list(body.stmts) if isinstance(body, Seq) else [body]
    return stmts, tuple(scratch)


def _hoist_global(body: Stmt, scratch: list[Buffer]) -> Stmt:
    """Global buffers allocated deeper (e.g. a recurrent op's per-sequence scratch inside its
    batch loop) become scratch parameters too: their shapes are static, and a loop whose
    iterations share one is never spread over threads (its stores do not move with it)."""

    def fix(s: Stmt) -> Stmt | None:
        if isinstance(s, Allocate) and s.buffer.scope == "global":
            scratch.append(s.buffer)
            return s.body
        return None

    return map_stmt(body, fix)


def block_size(extent: int, target: Target, cap: int = 256) -> int:
    """Threads per block: a multiple of the warp size, at most `cap` (256 leaves registers
    for the reduction loops) and no more than the work needs."""
    warp = target.warp_size
    cap = min(cap, target.max_threads_per_block)
    need = -(-extent // warp) * warp
    return max(warp, min(cap, need))


def gemm_tile(func: PrimFunc, target: Target, tf32: bool,
              knobs: Mapping[str, Any] | None = None,
              async_copy: bool = False) -> tuple[GemmParts, GemmTile] | None:
    """A matrix-product stage (conv, Gemm) with enough tiles to fill the GPU, and its tile
    (TF32 tensor cores when `tf32`); None otherwise. `knobs` (gpu_gemm_knobs) name the tile
    instead of the default's choice; `async_copy`: cp.async rings may fetch the tiles."""
    parts = match_gemm(func)
    if knobs and parts is None:
        raise ScheduleError(f"knobs {sorted(knobs)}: stage {func.name} is no matrix product")
    if parts is None:
        return None
    tile = (tile_from_knobs(parts, target, tf32, knobs, async_copy) if knobs
            else choose_tile(parts, target, tf32, async_copy))
    return None if tile is None else (parts, tile)


def gemm_stages(func: PrimFunc, parts: GemmParts, tile: GemmTile,
                partial: Buffer | None) -> list[Stage]:
    """The tiled matrix product's launch; with `partial`, a split-K's two: partial sums over
    K chunks (blockIdx.z) into it, then one thread per output adds them in a fixed order and
    runs the epilogue."""
    knobs: dict[str, Any] = {
        "bm": tile.bm, "bn": tile.bn, "bk": tile.bk, "threads": tile.threads,
        "mma_tf32": tile.mma, "warps_m": tile.warps_m, "warps_n": tile.warps_n, "tx": tile.tx,
        "min_blocks": tile.min_blocks, **({"stages": tile.stages} if tile.stages > 1 else {})}
    kind = "mma.m16n8k8.tf32" if tile.mma else "simt"
    groups = f" x{parts.groups} groups" if parts.g_axes else ""
    note = (f"gemm {parts.m}x{parts.n}x{parts.k}{groups} tile {tile.bm}x{tile.bn}x{tile.bk}"
            f" {kind}")
    if tile.stages > 1:
        note += f" {tile.stages}-stage cp.async"
    if partial is None:
        return [scheduled(func, Schedule().add("tile_gemm", **knobs), note, knobs)]
    knobs |= {"split": tile.split, "kc": tile.kc, "partial": partial.name}
    total = {"partial": partial.name, "split": tile.split, "threads": tile.threads}
    summing = PrimFunc(f"{func.name}_sum", func.params, func.body, dict(func.attrs))
    return [scheduled(func, Schedule().add("tile_gemm", **knobs),
                      f"{note} split-k {tile.split}x{tile.kc}", knobs),
            scheduled(summing, Schedule().add("split_k_sum", **total),
                      f"split-k sum {tile.split} x {parts.m}x{parts.n}", total)]


def schedule_stage(func: PrimFunc, target: Target, warp: bool = False,
                   shuffle: bool = True) -> Stage:
    """fuse the parallel chain, split it by the block size, bind it to blocks x threads
    (or, with `warp`, a warp per output where the stage is a few long reductions; lanes
    combine by shuffles, or without `shuffle` through shared memory)."""
    if warp:
        red = match_warp(func, target.sm_count)
        if red is not None:
            knobs: dict[str, Any] = {"warps": WARPS_PER_BLOCK, "lanes": target.warp_size}
            if not shuffle:
                knobs["shuffle"] = False
            note = f"warp reduce {red.outputs} x {red.length} ({red.op})"
            return scheduled(func, Schedule().add("warp_reduce", **knobs), note, knobs)
    sch = Schedule()
    chain = parallel_chain(func.body)
    extent = 1
    for loop in chain:
        extent *= loop.extent
    if extent < target.warp_size:
        # too little outer parallelism for a grid: spread inner loops over one block
        threads = block_size(max([1, *(lp.extent for lp in loops(func.body))]), target,
                             cap=target.max_threads_per_block)
        budget = target.shared_mem_static_kib * 1024
        if block_schedule(func, threads, budget) is not None:
            knobs = {"threads": threads, "shared_budget": budget}
            return scheduled(func, sch.add("block_threads", **knobs), f"block({threads})",
                             knobs)
    if not chain:
        return Stage(func, (1, 1, 1), (1, 1, 1), sch, "single thread", base=func)
    names = [lp.var.name for lp in chain]
    tile = tile_loop(chain, extent, target)
    if tile is not None:
        # split it, move the tile innermost, give each tile point its own accumulator
        pos = names.index(tile)
        order = [*names[:pos], f"{tile}_o", *names[pos + 1:], f"{tile}_i"]
        sch.add("split", tile, REGISTER_TILE).add("reorder", *order[pos + 1:])
        sch.add("tile_reduction", f"{tile}_i").add("unroll", f"{tile}_i")
        names, extent = order[:-1], extent // REGISTER_TILE
    name = names[0]
    for inner in names[1:]:
        sch.add("fuse", name, inner)
        name = f"{name}_{inner}"
    threads = block_size(extent, target)
    sch.add("split", name, threads)
    sch.add("bind", f"{name}_o", "blockIdx.x").add("bind", f"{name}_i", "threadIdx.x")
    blocks = -(-extent // threads)
    return Stage(sch.apply(func), (blocks, 1, 1), (threads, 1, 1), sch, base=func)


def _reuse(loop: For, body: Stmt, lane: Var) -> int:
    """How many of the reduction's per-thread loads (those moving with the thread index
    `lane`; the others are one broadcast per warp) do not move with `loop`: a tile of its
    iterations shares them from registers."""
    count = 0
    for x in walk_stmts(body):
        if isinstance(x, For):  # loads inside the reduction loops
            for st in walk_stmts(x.body):
                if isinstance(st, Store):
                    count += sum(1 for e in walk(st.value) if isinstance(e, Load)
                                 and e.source.scope == "global"
                                 and any(uses(i, lane) for i in e.indices)
                                 and not any(uses(i, loop.var) for i in e.indices))
            break
    return count


def tile_loop(chain: list[For], extent: int, target: Target) -> str | None:
    """The chain loop along which a thread computes REGISTER_TILE outputs: the one whose tile
    shares the most loads (e.g. a conv's output channels share the input window), when the
    grid keeps enough threads to fill the GPU. None when no tile pays."""
    inner = chain[-1].body
    if not (isinstance(inner, Allocate) and inner.buffer.scope == "local"
            and inner.buffer.shape == (1,)) or len(chain) < 2:
        return None
    if extent // REGISTER_TILE < target.sm_count * 512:
        return None
    lane = chain[-1].var
    best = max(chain[:-1], key=lambda lp: (_reuse(lp, inner, lane), lp.extent))
    if best.extent % REGISTER_TILE or _reuse(best, inner, lane) == 0:
        return None
    return best.var.name


def stage_prefix(k: int, stages: int) -> str:
    """The knob prefix of a kernel's k-th stage (none where it has one)."""
    return f"s{k}." if stages > 1 else ""


def gpu_stages(func: PrimFunc, target: Target, gemm: bool = False, tf32: bool = False,
               warp: bool | None = None, shuffle: bool = True,
               knobs: Mapping[str, Any] | None = None, async_copy: bool = False
               ) -> tuple[list[Stage], tuple[Buffer, ...]]:
    """The launches of one kernel, in order, and its scratch buffers. `gemm`: matrix-product
    stages become tiled kernels (dialects with shared memory); `tf32`: on TF32 tensor cores;
    `warp` (default `gemm`): long reductions a warp per output, combining by shuffles or
    (without `shuffle`) through shared memory. `knobs` (a tuning record's: GEMM knobs,
    prefixed by stage_prefix) replace the default tiles of the stages they name;
    `async_copy`: the target and dialect have cp.async (pipelined tiles). A conv's padding
    copy folds into the tiled product that reads it (gpu_pad.py): one launch fewer."""
    warp = gemm if warp is None else warp
    stmts, scratch = split_stages(func)
    wanted = _stage_knobs(knobs or {}, len(stmts))
    if wanted and not gemm:
        raise ScheduleError(f"GEMM knobs for {func.name}: this dialect has no tiled products")

    def tiled(k: int, stage: PrimFunc) -> tuple[GemmParts, GemmTile] | None:
        return gemm_tile(stage, target, tf32, wanted.get(k), async_copy) if gemm else None

    # knobs keep naming stages by their index before padding copies fold away
    kept, scratch = fold_pads(func, stmts, scratch, lambda k, s: tiled(k, s) is not None) \
        if gemm else (list(enumerate(stmts)), scratch)
    names = [func.name if len(kept) == 1 else f"{func.name}_s{k}" for k, _ in kept]
    # the tiled matrix products, once each (the tiling reads the body, not the parameters)
    pairs = [tiled(k, PrimFunc(names[n], func.params, body, dict(func.attrs)))
             for n, (k, body) in enumerate(kept)]
    partials = {  # stage -> its split-K partial sums' buffer
        n: Buffer(f"{names[n]}_partial", (t[1].split, t[0].n, t[0].m), "float32", "global")
        for n, t in enumerate(pairs) if t is not None and t[1].role == "partial"}
    scratch = scratch + tuple(partials.values())
    params = func.params + scratch
    out = []
    for n, (_, body) in enumerate(kept):
        stage = PrimFunc(names[n], params, body, dict(func.attrs))
        pair = pairs[n]
        if pair is None:
            out.append(schedule_stage(stage, target, warp=warp, shuffle=shuffle))
        else:
            out += gemm_stages(stage, *pair, partials.get(n))
    return out, scratch


def _stage_knobs(knobs: Mapping[str, Any], stages: int) -> dict[int, dict[str, Any]]:
    """A kernel's knobs by stage index; names no stage takes raise ScheduleError."""
    out: dict[int, dict[str, Any]] = {}
    for name, value in knobs.items():
        head, _, knob = name.rpartition(".")
        prefix = f"{head}." if head else ""
        k = next((k for k in range(stages) if stage_prefix(k, stages) == prefix), None)
        if k is None or knob not in GEMM_KNOBS:
            raise ScheduleError(f"knob {name!r}: the kernel has {stages} stage(s) and GEMM"
                                f" knobs {GEMM_KNOBS}")
        out.setdefault(k, {})[knob] = value
    return out


def default_gemm_knobs(func: PrimFunc, target: Target, tf32: bool,
                       async_copy: bool = False) -> dict[str, Any]:
    """The knobs of a kernel's default tiles: each matrix-product stage's, prefixed by
    stage_prefix (tiled=False where it keeps one output per thread); empty when the kernel
    has no matrix product."""
    out: dict[str, Any] = {}
    for prefix, (stage, _) in gemm_products(func).items():
        pair = gemm_tile(stage, target, tf32, async_copy=async_copy)
        out |= {f"{prefix}{n}": v for n, v in tile_knobs(pair[1] if pair else None).items()}
    return out


def gemm_products(func: PrimFunc) -> dict[str, tuple[PrimFunc, GemmParts]]:
    """A kernel's matrix-product stages and their parts, by the prefix their knobs take."""
    stmts, _ = split_stages(func)
    out = {}
    for k, body in enumerate(stmts):
        stage = PrimFunc(func.name, func.params, body, dict(func.attrs))
        parts = match_gemm(stage)
        if parts is not None:
            out[stage_prefix(k, len(stmts))] = (stage, parts)
    return out

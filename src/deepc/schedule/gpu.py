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

from dataclasses import dataclass, replace
from typing import Any

from deepc.ir.expr import Var
from deepc.ir.loop import Allocate, Buffer, For, PrimFunc, Seq, Stmt, Store, loops, walk_stmts
from deepc.ir.tensor import walk
from deepc.schedule.gpu_block import block_schedule
from deepc.schedule.schedule import Schedule

SHARED_STATIC_BYTES = 48 * 1024  # the most a kernel may declare statically
REGISTER_TILE = 8  # outputs per thread in reductions with shared loads


@dataclass(frozen=True)
class Stage:
    """One launch: `func` takes the kernel's parameters, then `scratch`."""

    func: PrimFunc
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    schedule: Schedule
    note: str = ""  # how a stage not described by `schedule` alone was mapped
    gemm: Any = None  # (GemmParts, GemmTile): rendered by backends/cuda/gemm.py instead
    warp: Any = None  # WarpParts: rendered by backends/cuda/warp.py instead


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
    from deepc.schedule.stmt_rewrite import map_stmt

    def fix(s: Stmt) -> Stmt | None:
        if isinstance(s, Allocate) and s.buffer.scope == "global":
            scratch.append(s.buffer)
            return s.body
        return None

    return map_stmt(body, fix)


def _uses(e: object, v: Var) -> bool:
    return any(isinstance(x, Var) and x == v for x in walk(e))  # type: ignore[arg-type]


def parallel_chain(stage: Stmt) -> list[For]:
    """The perfectly nested outer loops whose iterations write disjoint global elements."""
    chain: list[For] = []
    s = stage
    while isinstance(s, For):
        stores = [x for x in walk_stmts(s.body) if isinstance(x, Store)
                  and x.buffer.scope != "local"]
        if not stores or not all(any(_uses(i, s.var) for i in x.indices) for x in stores):
            break
        chain.append(s)
        s = s.body
    return chain


def block_size(extent: int, target: object, cap: int = 256) -> int:
    """Threads per block: a multiple of the warp size, at most `cap` (256 leaves registers
    for the reduction loops) and no more than the work needs."""
    warp = int(getattr(target, "warp_size", 32) or 32)
    cap = min(cap, int(getattr(target, "max_threads_per_block", 1024) or 1024))
    need = -(-extent // warp) * warp
    return max(warp, min(cap, need))


def gemm_stage(func: PrimFunc, target: object, tf32: bool) -> Stage | None:
    """A matrix-product stage (conv, Gemm) with enough tiles to fill the GPU as a tiled
    shared-memory kernel (TF32 tensor cores when `tf32`); None otherwise."""
    from deepc.schedule.gpu_gemm_match import choose_tile, match_gemm

    parts = match_gemm(func)
    tile = choose_tile(parts, target, tf32) if parts is not None else None
    if parts is None or tile is None:
        return None
    kind = "mma.m16n8k8.tf32" if tile.mma else "simt"
    note = (f"gemm {parts.m}x{parts.n}x{parts.k} tile {tile.bm}x{tile.bn}x{tile.bk} {kind}")
    return Stage(func, tile.grid(parts), (tile.threads, 1, 1), Schedule(), note,
                 (parts, tile))


def schedule_stage(func: PrimFunc, target: object, warp: bool = False) -> Stage:
    """fuse the parallel chain, split it by the block size, bind it to blocks x threads
    (or, with `warp`, a warp per output where the stage is a few long reductions)."""
    if warp:
        from deepc.backends.cuda.warp import warp_grid
        from deepc.schedule.gpu_warp import match_warp

        red = match_warp(func, target)
        if red is not None:
            grid, block = warp_grid(red)
            note = f"warp reduce {red.outputs} x {red.length} ({red.op})"
            return Stage(func, grid, block, Schedule(), note, warp=red)
    sch = Schedule()
    chain = parallel_chain(func.body)
    extent = 1
    for loop in chain:
        extent *= loop.extent
    if extent < int(getattr(target, "warp_size", 32) or 32):
        # too little outer parallelism for a grid: spread inner loops over one block
        threads = block_size(max([1, *(lp.extent for lp in loops(func.body))]), target,
                             cap=int(getattr(target, "max_threads_per_block", 1024) or 1024))
        block = block_schedule(func, threads, SHARED_STATIC_BYTES)
        if block is not None:
            return Stage(block, (1, 1, 1), (threads, 1, 1), sch, f"block({threads})")
    if not chain:
        return Stage(func, (1, 1, 1), (1, 1, 1), sch, "single thread")
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
    return Stage(sch.apply(func), (blocks, 1, 1), (threads, 1, 1), sch)


def _reuse(loop: For, body: Stmt, lane: Var) -> int:
    """How many of the reduction's per-thread loads (those moving with the thread index
    `lane`; the others are one broadcast per warp) do not move with `loop`: a tile of its
    iterations shares them from registers."""
    from deepc.ir.expr import Load

    count = 0
    for x in walk_stmts(body):
        if isinstance(x, For):  # loads inside the reduction loops
            for st in walk_stmts(x.body):
                if isinstance(st, Store):
                    count += sum(1 for e in walk(st.value) if isinstance(e, Load)
                                 and e.source.scope == "global"
                                 and any(_uses(i, lane) for i in e.indices)
                                 and not any(_uses(i, loop.var) for i in e.indices))
            break
    return count


def tile_loop(chain: list[For], extent: int, target: object) -> str | None:
    """The chain loop along which a thread computes REGISTER_TILE outputs: the one whose tile
    shares the most loads (e.g. a conv's output channels share the input window), when the
    grid keeps enough threads to fill the GPU. None when no tile pays."""
    inner = chain[-1].body
    if not (isinstance(inner, Allocate) and inner.buffer.scope == "local"
            and inner.buffer.shape == (1,)) or len(chain) < 2:
        return None
    sms = int(getattr(target, "sm_count", 0) or 0) or 80
    if extent // REGISTER_TILE < sms * 512:
        return None
    lane = chain[-1].var
    best = max(chain[:-1], key=lambda lp: (_reuse(lp, inner, lane), lp.extent))
    if best.extent % REGISTER_TILE or _reuse(best, inner, lane) == 0:
        return None
    return best.var.name


def gpu_stages(func: PrimFunc, target: object, gemm: bool = False,
               tf32: bool = False) -> tuple[list[Stage], tuple[Buffer, ...]]:
    """The launches of one kernel, in order, and its scratch buffers. `gemm`: matrix-product
    stages become tiled kernels (CUDA only); `tf32`: on TF32 tensor cores."""
    stmts, scratch = split_stages(func)
    names = [func.name if len(stmts) == 1 else f"{func.name}_s{k}" for k in range(len(stmts))]
    # the tiled matrix products, once each (the tiling reads the body, not the parameters)
    tiled = [gemm_stage(PrimFunc(names[k], func.params, body, dict(func.attrs)), target, tf32)
             if gemm else None for k, body in enumerate(stmts)]
    partials = {  # stage -> its split-K partial sums' buffer
        k: Buffer(f"{names[k]}_partial", (st.gemm[1].split, st.gemm[0].n, st.gemm[0].m),
                  "float32", "global")
        for k, st in enumerate(tiled) if st is not None and st.gemm[1].role == "partial"}
    scratch = scratch + tuple(partials.values())
    params = func.params + scratch
    out = []
    for k, body in enumerate(stmts):
        stage = PrimFunc(names[k], params, body, dict(func.attrs))
        st = tiled[k]
        if st is None:
            out.append(schedule_stage(stage, target, warp=gemm))
        elif k in partials:
            out += split_k_stages(replace(st, func=stage), partials[k].name)
        else:
            out.append(replace(st, func=stage))
    return out, scratch


def split_k_stages(stage: Stage, buf: str) -> list[Stage]:
    """A split-K matrix product's two launches: partial sums over K chunks (blockIdx.z) into
    `buf`, then one thread per output adds them in a fixed order and runs the epilogue."""
    parts, tile = stage.gemm
    part = replace(tile, scratch=buf)
    red = replace(tile, role="reduce", scratch=buf)
    func = stage.func
    red_func = PrimFunc(f"{func.name}_sum", func.params, func.body, dict(func.attrs))
    return [
        replace(stage, grid=part.grid(parts), note=f"{stage.note} split-k {tile.split}x{tile.kc}",
                gemm=(parts, part)),
        Stage(red_func, red.grid(parts), (tile.threads, 1, 1), Schedule(),
              f"split-k sum {tile.split} x {parts.m}x{parts.n}", (parts, red)),
    ]

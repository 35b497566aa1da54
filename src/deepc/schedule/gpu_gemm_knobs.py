"""Tuning knobs of a tiled matrix-product stage to its GemmTile, checked against the target's
limits (threads per block, static shared memory, registers per thread) and against what the
tile_gemm primitive can index; a knob set that breaks a rule raises ScheduleError.

    tiled     False: the stage keeps one output per thread (no tile)
    mma       TF32 tensor cores (needs allow_tf32 and a target with them) or SIMT fp32
    bm bn bk  the block's tile of outputs (M x N) and its K step
    threads   SIMT: threads per block (TF32: 32 x warps_m x warps_n, derived)
    tx        SIMT: threads along M (threads / tx along N)
    warps_m warps_n   TF32: warps along M and N, each an m16n8k8 grid
    min_blocks        blocks an SM should hold (the launch bounds' register cap)
    split     K in this many chunks over blockIdx.z, summed by a second launch
    stages    1: the next K step fetched through registers; 2-4: a ring of shared slots
              filled by cp.async (targets declaring it), in dynamic shared memory
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepc.errors import ScheduleError
from deepc.schedule.gpu_gemm_match import GemmParts, GemmTile, chunked
from deepc.schedule.gpu_gemm_pipeline import MAX_STAGES, shared_bytes
from deepc.target.spec import Target

GEMM_KNOBS = ("tiled", "mma", "bm", "bn", "bk", "threads", "tx", "warps_m", "warps_n",
              "min_blocks", "split", "stages")
# what an untiled stage's knobs and the other kind's knobs say (so each tile is one spelling)
NOMINAL = GemmTile(64, 64, 16, 256, tx=16, warps_m=2, warps_n=2)
MMA_M, MMA_N, MMA_K = 16, 8, 8  # mma.sync m16n8k8
REGISTERS_PER_THREAD = 255  # what the ISA addresses
REGISTER_OVERHEAD = 40  # indices, pointers and loop state beside the tile's registers


def tile_knobs(tile: GemmTile | None) -> dict[str, Any]:
    """A tile as every knob, those it does not read at their NOMINAL values, so that
    tile_from_knobs reads them back to the same tile and each tile has one spelling."""
    t = tile or NOMINAL
    simt, mma = (NOMINAL, t) if t.mma else (t, NOMINAL)
    return {"tiled": tile is not None, "mma": t.mma, "bm": t.bm, "bn": t.bn, "bk": t.bk,
            "threads": simt.threads, "tx": simt.tx, "warps_m": mma.warps_m,
            "warps_n": mma.warps_n, "min_blocks": t.min_blocks, "split": t.split,
            "stages": t.stages}


def tile_from_knobs(parts: GemmParts, target: Target, tf32: bool,
                    knobs: Mapping[str, Any], async_copy: bool = False) -> GemmTile | None:
    """The tile `knobs` name for this product (None for tiled=False); raises ScheduleError
    naming the first rule a knob breaks. `async_copy`: the target and dialect have cp.async
    (stages above 1)."""
    unknown = set(knobs) - set(GEMM_KNOBS)
    if unknown:
        raise ScheduleError(f"unknown GEMM knobs {sorted(unknown)} (knobs: {GEMM_KNOBS})")
    if knobs.get("tiled", True) is False:
        return None
    try:
        bm, bn, bk = (int(knobs[k]) for k in ("bm", "bn", "bk"))
    except KeyError as e:
        raise ScheduleError(f"GEMM knobs need bm, bn and bk; {e.args[0]} is missing") from None
    min_blocks, split = int(knobs.get("min_blocks", 2)), int(knobs.get("split", 1))
    stages = int(knobs.get("stages", 1))
    if stages > 1 and not async_copy:
        raise ScheduleError(f"stages={stages}: a pipelined tile needs cp.async (the target's"
                            " [intrinsics] async_copy and a dialect spelling it); use stages=1")
    if knobs.get("mma", tf32) and not tf32:
        raise ScheduleError("mma=True: TF32 tiles need allow_tf32 (--allow-tf32) and a target"
                            " with mma.m16n8k8.tf32")
    if knobs.get("mma", tf32):
        wm, wn = int(knobs.get("warps_m", 2)), int(knobs.get("warps_n", 2))
        tile = GemmTile(bm, bn, bk, target.warp_size * wm * wn, True, wm, wn,
                        min_blocks=min_blocks, stages=stages)
    else:
        threads = int(knobs.get("threads", 256))
        tile = GemmTile(bm, bn, bk, threads, tx=int(knobs.get("tx", 16)), min_blocks=min_blocks,
                        stages=stages)
    _check(tile, target)
    if split > 1 and parts.g_axes:
        raise ScheduleError(f"split={split}: a grouped conv's blockIdx.z runs its groups")
    if split < 1 or split > parts.k // bk:
        raise ScheduleError(f"split={split}: K = {parts.k} holds {parts.k // bk} steps of {bk}")
    return chunked(tile, parts, split) if split > 1 else tile


def _check(tile: GemmTile, target: Target) -> None:
    t, bm, bn, bk = tile.threads, tile.bm, tile.bn, tile.bk
    rules = [
        (t % target.warp_size == 0 and t <= target.max_threads_per_block,
         f"{t} threads: a multiple of {target.warp_size} up to"
         f" {target.max_threads_per_block} per block"),
        # each thread fetches whole columns of the A tile and whole rows of the B tile
        (t % bm == 0 and t % bk == 0 and bk * bm % t == 0 and bk * bn % t == 0,
         f"tile {bm}x{bn}x{bk}: {t} threads must be a multiple of bm and bk and divide"
         " bk*bm and bk*bn"),
        (_shared_bytes(tile) <= _shared_limit(tile, target) * 1024,
         f"tile {bm}x{bn}x{bk} in {tile.stages} stage(s) needs {_shared_bytes(tile)} bytes"
         f" of shared memory; the target allows {_shared_limit(tile, target)} KiB"),
        (tile.min_blocks >= 1, f"min_blocks={tile.min_blocks}: at least 1"),
        (1 <= tile.stages <= MAX_STAGES and (tile.stages == 1 or bk & (bk - 1) == 0),
         f"stages={tile.stages}: 1 to {MAX_STAGES}, pipelined over a power-of-two bk"),
    ]
    if tile.mma:
        rules.append((bm % (MMA_M * tile.warps_m) == 0 and bn % (MMA_N * tile.warps_n) == 0
                      and bk % MMA_K == 0,
                      f"tile {bm}x{bn}x{bk} over {tile.warps_m}x{tile.warps_n} warps: whole"
                      f" m{MMA_M}n{MMA_N}k{MMA_K} tiles per warp"))
    else:
        ty = t // tile.tx if tile.tx and t % tile.tx == 0 else 0
        rules.append((ty > 0 and bm % (4 * tile.tx) == 0 and bn % (4 * ty) == 0,
                      f"tile {bm}x{bn} over {tile.tx}x{ty or '?'} threads: each thread takes"
                      " whole 4x4 quads"))
    per_block = target.gpu.registers_per_block
    if per_block:
        cap = min(REGISTERS_PER_THREAD, per_block // (t * max(tile.min_blocks, 1)))
        rules.append((_registers(tile) <= cap,
                      f"tile {bm}x{bn}x{bk} with {t} threads needs ~{_registers(tile)}"
                      f" registers a thread; {tile.min_blocks} blocks per SM leave {cap}"))
    for ok, why in rules:
        if not ok:
            raise ScheduleError(why)


def _shared_bytes(tile: GemmTile) -> int:
    """As and Bs as tile_gemm declares them (padded rows against bank conflicts)."""
    return shared_bytes(tile.bm, tile.bn, tile.bk, tile.mma, tile.stages)


def _shared_limit(tile: GemmTile, target: Target) -> int:
    """KiB a block may have: static arrays, or (pipelined) the opt-in dynamic pool."""
    return target.shared_mem_static_kib if tile.stages == 1 else \
        target.shared_mem_per_block_kib


def _registers(tile: GemmTile) -> int:
    """Accumulators, plus the next K step's fetched A and B (none where cp.async copies
    them), plus the kernel's own."""
    accumulators = tile.bm * tile.bn // tile.threads
    fetched = tile.bk * (tile.bm + tile.bn) // tile.threads if tile.stages == 1 else 0
    return accumulators + fetched + REGISTER_OVERHEAD

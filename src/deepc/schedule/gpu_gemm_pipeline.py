"""The multi-stage cp.async pipeline of the tiled matrix product (gpu_gemm.py with stages > 1):
each K step's A and B tiles copied global -> shared without registers into a ring of slots,
and the shared tiles' shapes (per stage) that the primitive and its knob checks share.

    copy the chunk's first S-1 steps into their slots, one commit group each
    (the step at k uses slot (k / bk) % S)
    for g_k0 in klo..khi step bk {
      wait_group(S-2); barrier        # this step's slot has landed, for every thread; and
                                       # every thread is done with the slot read last step
      if g_k0 + (S-1) bk < khi { copy that step into the slot read last step }
      commit                           # (empty groups too: the count stays one per step)
      compute on this step's slot }

One barrier per step instead of two, and no registers holding the next step's operands. A
copy past K (a partial last k-step) reads a valid address with 0 bytes: cp.async then fills
the destination with zeros. Operands that are no single load are stored as before, by the
thread, into the slot being filled: the barrier of the step that reads it orders them too.
"""

from __future__ import annotations

from collections.abc import Callable

from deepc.ir.affine import flat_offset
from deepc.ir.expr import AddressOf, Const, Expr, select
from deepc.ir.loop import Buffer, Evaluate, For, ForKind, IfThenElse, Stmt
from deepc.schedule.gpu_build import lets, seq, v

# The CUDA runtime reserves 1 KiB of shared memory per resident block (sm_80 and later),
# beside what the kernel asks for
BLOCK_RESERVED_BYTES = 1024
MAX_STAGES = 4


def shared_shapes(bm: int, bn: int, bk: int, mma: bool,
                  stages: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The A and B shared tiles: TF32 A [k][m + 8] with rows interleaved, B [n][k + 8] with k
    interleaved (one stage) or [n][k + 4] plain (cp.async writes 16 bytes of consecutive k;
    a pitch of k + 4 keeps the fragment loads free of bank conflicts); SIMT A [k][m], B
    [k][n + 4]. Pipelined, a leading axis of `stages` slots."""
    if mma:
        a, b = (bk, bm + 8), (bn, bk + (8 if stages == 1 else 4))
    else:
        a, b = (bk, bm), (bk, bn + 4)
    if stages == 1:
        return a, b
    return (stages, *a), (stages, *b)


def shared_bytes(bm: int, bn: int, bk: int, mma: bool, stages: int) -> int:
    """Both tiles' bytes, each rounded to 16 as the dynamic pool lays them out."""
    total = 0
    for shape in shared_shapes(bm, bn, bk, mma, stages):
        size = 4
        for extent in shape:
            size *= extent
        total += -(-size // 16) * 16
    return total


def deepest_ring(bm: int, bn: int, bk: int, mma: bool, min_blocks: int, per_sm_kib: int,
                 per_block_kib: int) -> int:
    """The most stages (up to MAX_STAGES) whose ring fits a block's shared memory and still
    lets an SM hold `min_blocks` blocks (1 where not even two do: the register fetch)."""
    for stages in range(MAX_STAGES, 1, -1):
        need = shared_bytes(bm, bn, bk, mma, stages)
        if (need <= per_block_kib * 1024 and bk & (bk - 1) == 0
                and min_blocks * (need + BLOCK_RESERVED_BYTES) <= per_sm_kib * 1024):
            return stages
    return 1


def copy(dst: Buffer, at: tuple[Expr, ...], src: Buffer, offset: Expr, width: int,
         valid: Expr | None) -> Stmt:
    """cp.async of `width` floats (1 or 4) from src[offset] to dst[at]; where `valid` is
    false, none are read and the destination is zero-filled."""
    nbytes = 4 * width
    size: Expr = Const(nbytes, "int64") if valid is None else select(valid, nbytes, 0)
    return Evaluate(f"cp_async{nbytes}", (AddressOf(dst, flat_offset(dst.shape, at)),
                                         AddressOf(src, offset), size))


def pipelined(stages: int, bk: int, klo: Expr, khi: Expr, fill: Callable[[Expr, Expr], Stmt],
              compute: Callable[[Expr], Stmt]) -> Stmt:
    """The K loop over a ring of `stages` slots: fill(k0, slot) issues a step's copies,
    compute(slot) consumes one (see the module's docstring)."""
    commit = Evaluate("cp_async_commit")

    def slot(k: Expr) -> Expr:  # by the step's index from 0, not from the chunk's start:
        return k // bk % stages  # k is non-negative, so both render as C's / and %

    prologue = [seq(IfThenElse(klo + s * bk < khi, fill(klo + s * bk, slot(klo + s * bk))),
                    commit) for s in range(stages - 1)]
    gk0, rs, ws = v("g_k0"), v("g_rs"), v("g_ws")
    ahead = gk0 + (stages - 1) * bk
    # the slot read this step, and the one read last step (the step `ahead`'s, filled now)
    slots = [(rs, slot(gk0)), (ws, select(rs < 1, stages - 1, rs - 1))]
    step = lets(slots, seq(
        Evaluate("cp_async_wait", (Const(stages - 2, "int64"),)), Evaluate("barrier"),
        IfThenElse(ahead < khi, fill(ahead, ws)), commit, compute(rs)))
    return seq(*prologue, For(gk0, khi, ForKind.SERIAL, step, start=klo, step=bk))


__all__ = ["BLOCK_RESERVED_BYTES", "MAX_STAGES", "copy", "deepest_ring", "pipelined",
           "shared_bytes", "shared_shapes"]

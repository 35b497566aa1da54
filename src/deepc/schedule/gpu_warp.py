"""Warp-per-output reductions: a stage with few outputs and long reductions (global pools,
squeeze-excitation means, matrix-vector products) gives each output one warp, whose lanes
stride the flattened reduction and combine with shuffles (backends/cuda/warp.py renders it).

    for i.. { alloc acc[1]; acc[0] = C; for r.. { acc[0] = acc[0] OP x }; out[...] = f(acc[0]) }

OP is add, max or min (associative; the order of the sum changes, within float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from deepc.ir.expr import Binary, Const, Load, Var
from deepc.ir.loop import Allocate, For, PrimFunc, Seq, Stmt, Store, walk_stmts

WARPS_PER_BLOCK = 8


@dataclass(frozen=True)
class WarpParts:
    out_axes: tuple[tuple[Var, int], ...]
    red_axes: tuple[tuple[Var, int], ...]
    acc: Store  # acc[0] = init
    update: Store  # acc[0] = acc[0] OP x
    op: str
    epilogue: tuple[Stmt, ...]

    @property
    def outputs(self) -> int:
        return prod(e for _, e in self.out_axes)

    @property
    def length(self) -> int:
        return prod(e for _, e in self.red_axes)


def match_warp(func: PrimFunc, target: object) -> WarpParts | None:
    """The stage as a warp-per-output reduction when the one-thread-per-output grid would
    leave most of the GPU idle and each reduction is long enough for a warp."""
    from deepc.schedule.gpu import parallel_chain

    chain = parallel_chain(func.body)
    if not chain or not isinstance(chain[-1].body, Allocate):
        return None
    buf = chain[-1].body.buffer
    if buf.scope != "local" or buf.shape != (1,) or buf.dtype != "float32":
        return None
    body = chain[-1].body.body
    stmts = list(body.stmts) if isinstance(body, Seq) else [body]
    if len(stmts) < 3 or not isinstance(stmts[0], Store) or not isinstance(stmts[1], For):
        return None
    init, s = stmts[0], stmts[1]
    if init.buffer.name != buf.name or not isinstance(init.value, Const):
        return None
    red: list[tuple[Var, int]] = []
    while isinstance(s, For):
        red.append((s.var, s.extent))
        s = s.body
    if not (isinstance(s, Store) and s.buffer.name == buf.name and isinstance(s.value, Binary)
            and s.value.op in ("add", "max", "min") and isinstance(s.value.a, Load)
            and s.value.a.source.name == buf.name):
        return None
    epilogue = tuple(stmts[2:])
    if any(isinstance(x, For) for e in epilogue for x in walk_stmts(e)):
        return None
    parts = WarpParts(tuple((lp.var, lp.extent) for lp in chain), tuple(red), init, s,
                      s.value.op, epilogue)
    sms = int(getattr(target, "sm_count", 0) or 0) or 80
    # few outputs; or, for long reductions (a classifier's matrix product at batch 32), up to
    # a few warps per SM's worth more: the lanes' coalesced reads beat a thread per output
    # walking its own weight row (ResNet-18's fc at batch 32: 0.08 ms that way)
    limit = sms * (256 if parts.length >= 256 else 64)
    if parts.length < 64 or parts.outputs > limit:
        return None
    return parts

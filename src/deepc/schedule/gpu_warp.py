"""Warp-per-output reductions: a stage with few outputs and long reductions (global pools,
squeeze-excitation means, matrix-vector products) gives each output one warp, whose lanes
stride the flattened reduction and combine with shuffle-xor steps (the primitive
warp_reduce).

    for i.. { alloc acc[1]; acc[0] = C; for r.. { acc[0] = acc[0] OP x }; out[...] = f(acc[0]) }

OP is add, max or min (associative; the order of the sum changes, within float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from deepc.errors import VerifyError
from deepc.ir.expr import Binary, Const, Load, Var, binary, intrin
from deepc.ir.loop import (
    Allocate,
    Buffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    walk_stmts,
)
from deepc.schedule.gpu_build import bind, decode, kernel, lets, mask, seq, shr, v
from deepc.schedule.gpu_chain import parallel_chain

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


def match_reduction(func: PrimFunc) -> WarpParts | None:
    """The stage's parts when it is one accumulation per output (any length)."""
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
    return WarpParts(tuple((lp.var, lp.extent) for lp in chain), tuple(red), init, s,
                     s.value.op, epilogue)


def match_warp(func: PrimFunc, sms: int) -> WarpParts | None:
    """The stage as a warp-per-output reduction when the one-thread-per-output grid would
    leave most of the GPU's `sms` idle and each reduction is long enough for a warp."""
    parts = match_reduction(func)
    if parts is None:
        return None
    # few outputs; or, for long reductions (a classifier's matrix product at batch 32), up to
    # a few warps per SM's worth more: the lanes' coalesced reads beat a thread per output
    # walking its own weight row (ResNet-18's fc at batch 32: 0.08 ms that way)
    limit = sms * (256 if parts.length >= 256 else 64)
    if parts.length < 64 or parts.outputs > limit:
        return None
    return parts


def warp_reduce(func: PrimFunc, warps: int = WARPS_PER_BLOCK, lanes: int = 32,
                shuffle: bool = True) -> PrimFunc:
    """One warp of `lanes` per output, `warps` warps a block: lanes stride the flattened
    reduction, then log2(lanes) shuffle-xor steps combine them; lane 0 runs the epilogue.
    Without `shuffle` (a dialect with no sub-group shuffles) the lanes combine through a
    shared-memory tree, every thread reaching its barriers.

        for i.. { alloc acc[1]; acc[0] = C; for r.. { acc[0] = acc[0] OP x }; out.. = f(acc) }
    warp_reduce(8, 32) ->
        blockIdx.x for g_bx in 0..O/8 { threadIdx.x for g_tid in 0..256 {
          let g_lane = g_tid & 31, g_o = g_bx * 8 + (g_tid >> 5)
          if g_o < O { let i.. = decode(g_o); alloc acc[1]; acc[0] = C
            for g_r in g_lane..L step 32 { let r.. = decode(g_r); acc[0] = acc[0] OP x }
            acc[0] = acc[0] OP shfl_xor(acc[0], 16) ... OP shfl_xor(acc[0], 1)
            if g_lane == 0 { out.. = f(acc[0]) } } } }
    warp_reduce(8, 32, shuffle=False) -> ... alloc g_red: float32[256] shared
            acc[0] = C; if g_o < O { the strided loop }; g_red[g_tid] = acc[0]; barrier()
            if g_lane < 16 { g_red[g_tid] = g_red[g_tid] OP g_red[g_tid + 16] }; barrier()
            ... 8, 4, 2, 1; if g_o < O && g_lane == 0 { acc[0] = g_red[g_tid]; out.. = f(acc) }
    """
    parts = match_reduction(func)
    if parts is None:
        raise VerifyError(f"{func.name}: warp_reduce needs one accumulation per output")
    if lanes & (lanes - 1):
        raise VerifyError(f"{func.name}: warp_reduce combines halves: {lanes} lanes")
    acc = parts.acc.buffer
    lane, out, r = v("g_lane"), v("g_o"), v("g_r")
    zero = Const(0, "int64")
    stride = For(r, parts.length, ForKind.SERIAL, lets(decode(parts.red_axes, r), parts.update),
                 start=lane, step=lanes)
    # a mask and a shift, as on an unsigned thread index (a signed
    # `%` and `/` cost the pools of EfficientNet-B0 6 registers)
    tid, shift = v("g_tid"), lanes.bit_length() - 1
    lane_of, warp_of = mask(tid, lanes - 1), shr(tid, shift)
    steps = [lanes >> k for k in range(1, shift + 1)]
    if shuffle:
        combine = [Store(acc, (zero,), binary(parts.op, Load(acc, (zero,)), intrin(
            "shfl_xor", Load(acc, (zero,)), Const(s, "int64")))) for s in steps]
        inner: Stmt = IfThenElse(out < parts.outputs, lets(decode(parts.out_axes, out), Allocate(
            acc, seq(parts.acc, stride, *combine, IfThenElse(lane.eq(0), seq(*parts.epilogue))))))
    else:
        red = Buffer("g_red", (lanes * warps,), acc.dtype, "shared")
        tree = [seq(IfThenElse(lane < s, Store(red, (tid,), binary(
            parts.op, Load(red, (tid,)), Load(red, (tid + s,))))), Evaluate("barrier"))
            for s in steps]
        last = IfThenElse((out < parts.outputs) & lane.eq(0), lets(
            decode(parts.out_axes, out), seq(Store(acc, (zero,), Load(red, (tid,))),
                                             *parts.epilogue)))
        inner = Allocate(red, Allocate(acc, seq(
            parts.acc, IfThenElse(out < parts.outputs, lets(decode(parts.out_axes, out), stride)),
            Store(red, (tid,), Load(acc, (zero,))), Evaluate("barrier"), *tree, last)))
    body = lets([(lane, lane_of), (out, v("g_bx") * warps + warp_of)], inner)
    grid = [("g_bx", -(-parts.outputs // warps), "blockIdx.x"),
            ("g_tid", lanes * warps, "threadIdx.x")]
    return kernel(func, bind(grid, body))

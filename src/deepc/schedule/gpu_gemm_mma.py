"""The TF32 tensor-core side of the tiled matrix-product primitive (gpu_gemm.py): shared
layouts, the m16n8k8 fragment loop and the accumulators' coordinates, as loop IR.

A block of warps_m x warps_n warps, each a grid of mi x ni m16n8k8 tiles. The A tile's rows
and the B tile's k are interleaved in shared memory so that each fragment register pair is
one 8-byte load (arow, bpos); operands are rounded to TF32 on their way there (pipelined by
cp.async, which copies raw fp32 bits, as fragments are loaded instead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deepc.ir.affine import flat_offset
from deepc.ir.expr import AddressOf, Const, Expr, FlatLoad, Lane, Load, Pack, Var, binary, intrin
from deepc.ir.loop import Buffer, Evaluate, Stmt, Store, VectorStore
from deepc.schedule.gpu_build import lets, local, mask, seq, shl, shr, unrolled, v

WARP = 32  # mma.sync is a warp-wide instruction of 32 lanes by definition of the PTX ISA


@dataclass(frozen=True)
class Tile:
    bm: int
    bn: int
    bk: int
    threads: int
    warps_m: int
    warps_n: int
    tx: int = 16

    @property
    def grid(self) -> tuple[int, int, int, int]:
        """A warp's tile (rows, columns) and its m16n8 tiles along each (mi, ni)."""
        wm, wn = self.bm // self.warps_m, self.bn // self.warps_n
        return wm, wn, wm // 16, wn // 8


def acc_shape(tile: Tile) -> tuple[int, ...]:
    _, _, mi, ni = tile.grid
    return (mi, ni, 4)


def arow(m: Expr) -> Expr:
    """The A tile's shared column of tile row m: rows m and m + 8 of each 16 interleaved
    (positions 2(m % 8) + m / 8), so a fragment's (row g, row g + 8) pair is one 8-byte
    load."""
    return binary("bitor", binary("bitor", mask(m, ~15), shl(mask(m, 7), 1)),
                  mask(shr(m, 3), 1))


def bpos(k: Expr) -> Expr:
    """The B tile's shared position of k within its row ([n][k]): k and k + 4 of each 8
    adjacent (positions 2(k % 4) + k / 4); rows of bk + 8 floats keep those loads and the
    float4 stores free of bank conflicts."""
    return binary("bitor", binary("bitor", mask(k, ~7), shl(mask(k, 3), 1)),
                  mask(shr(k, 2), 1))


def store_b(tile: Tile, Bs: Buffer, rb: Buffer, tid: Var, octets: int) -> Stmt:
    """The B registers to shared memory ([n][k], see bpos), rounded to TF32: a k octet per
    thread as two float4 stores when loaded as float4s, else one value at a time."""
    t, bk = tile.threads, tile.bk
    tf32 = lambda x: intrin("tf32_round", x)  # noqa: E731
    if octets:
        def octet(e: Var) -> Stmt:
            lo, hi = Load(rb, (2 * e,)), Load(rb, (2 * e + 1,))
            at = flat_offset(Bs.shape, (tid // (bk // 8) + e * (t // (bk // 8)),
                                        (tid % (bk // 8)) * 8))
            first = Pack("float32x4", (tf32(Lane(lo, 0)), tf32(Lane(hi, 0)),
                                       tf32(Lane(lo, 1)), tf32(Lane(hi, 1))))
            second = Pack("float32x4", (tf32(Lane(lo, 2)), tf32(Lane(hi, 2)),
                                        tf32(Lane(lo, 3)), tf32(Lane(hi, 3))))
            return seq(VectorStore(Bs, at, first), VectorStore(Bs, at + 4, second))
        return unrolled("g_e", octets, octet)
    return unrolled("g_e", bk * tile.bn // t, lambda e: Store(
        Bs, (tid // bk + e * (t // bk), bpos(tid % bk)), tf32(Load(rb, (e,)))))


def _coords(tile: Tile, tid: Var, body: Stmt) -> Stmt:
    """The lane's fragment coordinates (g_g, g_t) and its warp's tile origin (g_wm, g_wn)."""
    wm, wn, _, _ = tile.grid
    lane = v("g_lane")
    return lets([(lane, tid % WARP), (v("g_g"), lane // 4), (v("g_t"), lane % 4),
                 (v("g_wm"), (tid // WARP % tile.warps_m) * wm),
                 (v("g_wn"), (tid // WARP // tile.warps_m) * wn)], body)


def _tf32(x: Expr) -> Expr:
    """An fp32 operand's bits rounded to TF32 on their way to the tensor core (which ignores
    the low 13): half a TF32 ulp added, as deepc_tf32 does where operands are stored."""
    return binary("add", x, Const(0x1000, "uint32"))


def step(tile: Tile, As: Buffer, Bs: Buffer, c: Buffer, tid: Var,
         slot: Expr | None = None) -> Stmt:
    """One K step: per k8, each warp's fragments from shared memory, then its mma grid.
    Pipelined (from the ring's `slot`), the tiles hold raw fp32 copies: fragments are
    rounded to TF32 as they are loaded, and B is [n][k] plain (two 4-byte loads a pair)."""
    _, _, mi, ni = tile.grid
    g, t, wm, wn = v("g_g"), v("g_t"), v("g_wm"), v("g_wn")
    a = Buffer("g_a", (mi, 4), "uint32", "local")
    b = Buffer("g_b", (ni, 2), "uint32", "local")
    pair = "uint32x2"
    at = (lambda *idx: idx) if slot is None else (lambda *idx: (slot, *idx))
    rounded = (lambda x: x) if slot is None else _tf32

    def k8(s: Var) -> Stmt:
        ks = s * 8
        r, lo, hi, bv = v("g_r"), Var("g_lo", pair), Var("g_hi", pair), Var("g_v", pair)
        frag_a = unrolled("g_i", mi, lambda i: lets(
            [(r, wm + i * 16 + 2 * g),  # rows g, g + 8 (see arow)
             (lo, FlatLoad(As, flat_offset(As.shape, at(ks + t, r)), pair)),
             (hi, FlatLoad(As, flat_offset(As.shape, at(ks + t + 4, r)), pair))],
            seq(*(Store(a, (i, Const(q, "int64")), rounded(Lane(x, j)))
                  for q, (x, j) in enumerate(((lo, 0), (lo, 1), (hi, 0), (hi, 1)))))))

        def frag_b(j: Var) -> Stmt:
            n = wn + j * 8 + g
            if slot is not None:  # k = t, t + 4 of the plain row
                return seq(*(Store(b, (j, Const(h, "int64")), _tf32(FlatLoad(
                    Bs, flat_offset(Bs.shape, at(n, ks + t + 4 * h)), "uint32")))
                    for h in range(2)))
            return lets(  # k = t, t + 4 (see bpos)
                [(bv, FlatLoad(Bs, flat_offset(Bs.shape, (n, ks + 2 * t)), pair))],
                seq(Store(b, (j, Const(0, "int64")), Lane(bv, 0)),
                    Store(b, (j, Const(1, "int64")), Lane(bv, 1))))
        grid = unrolled("g_i", mi, lambda i: unrolled("g_j", ni, lambda j: Evaluate(
            "mma_m16n8k8_tf32", (AddressOf(c, flat_offset(c.shape, (i, j, Const(0, "int64")))),
                                 AddressOf(a, flat_offset(a.shape, (i, Const(0, "int64")))),
                                 AddressOf(b, flat_offset(b.shape, (j, Const(0, "int64"))))))))
        return local("g_a", a.shape, a.dtype, local("g_b", b.shape, b.dtype,
                                                    seq(frag_a, unrolled("g_j", ni, frag_b),
                                                        grid)))
    return _coords(tile, tid, unrolled("g_ks", tile.bk // 8, k8))


def outputs(tile: Tile, tid: Var, gm: Var, gn: Var, c: Buffer,
            inner: Callable[[Expr], Stmt]) -> Stmt:
    """Each accumulator's output (gm, gn) bound around `inner(accumulator)`."""
    _, _, mi, ni = tile.grid
    g, t, wm, wn = v("g_g"), v("g_t"), v("g_wm"), v("g_wn")
    return _coords(tile, tid, unrolled("g_i", mi, lambda i: unrolled(
        "g_j", ni, lambda j: unrolled("g_q", 4, lambda q: lets(
            [(gm, v("g_m0") + wm + i * 16 + g + shr(q, 1) * 8),
             (gn, v("g_n0") + wn + j * 8 + 2 * t + mask(q, 1))],
            inner(Load(c, (i, j, q))))))))

"""The TF32 tensor-core side of the tiled matrix-product kernel (gemm.py): its shared-memory
layouts, the m16n8k8 fragment loop and the accumulators' coordinates.

A block of warps_m x warps_n warps, each a grid of mi x ni m16n8k8 tiles. The A tile's rows
and the B tile's k are interleaved in shared memory so that each fragment register pair is
one 8-byte load (arow, bpos); operands are rounded to TF32 on their way there (deepc_tf32)."""

from __future__ import annotations

from deepc.schedule.gpu_gemm_match import GemmTile

MMA_HELPERS = r"""
// half a TF32 ulp added to the bits: the tensor core, which ignores an operand's low 13 bits,
// then sees x rounded as cvt.rna.tf32.f32 would (an integer add instead of a conversion)
static __device__ __forceinline__ float deepc_tf32(float x) {
  return __uint_as_float(__float_as_uint(x) + 0x1000u); }
static __device__ __forceinline__ void deepc_mma_tf32(float* c, const unsigned* a,
                                                      const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
"""


def warp_grid(tile: GemmTile) -> tuple[int, int, int, int]:
    """A warp's tile (rows, columns) and its m16n8 tiles along each (mi, ni)."""
    wm, wn = tile.bm // tile.warps_m, tile.bn // tile.warps_n
    return wm, wn, wm // 16, wn // 8


def _warp_coords(tile: GemmTile) -> list[str]:
    """The lane's fragment coordinates (g_g, g_t) and its warp's tile origin (g_wm, g_wn)."""
    wm, wn, _, _ = warp_grid(tile)
    return ["const int g_lane = g_tid % 32, g_g = g_lane / 4, g_t = g_lane % 4;",
            f"const int g_wm = (g_tid / 32 % {tile.warps_m}) * {wm};",
            f"const int g_wn = (g_tid / 32 / {tile.warps_m}) * {wn};"]


def arow(m: str) -> str:
    """The A tile's shared column of tile row m: rows m and m + 8 of each 16 interleaved
    (positions 2(m % 8) + m / 8), so that a fragment's (row g, row g + 8) pair is one 8-byte
    load."""
    return f"((({m}) & ~15) | ((({m}) & 7) << 1) | ((({m}) >> 3) & 1))"


def bpos(k: str) -> str:
    """The B tile's shared position of k within its row ([n][k]): k and k + 4 of each 8
    adjacent (positions 2(k % 4) + k / 4), a fragment's (k = t, t + 4) pair one 8-byte load.
    Rows of bk + 8 floats keep those loads and the float4 stores free of bank conflicts."""
    return f"((({k}) & ~7) | ((({k}) & 3) << 1) | ((({k}) >> 2) & 1))"


def store_b(tile: GemmTile, octets: int) -> list[str]:
    """The B registers to shared memory ([n][k], see bpos), rounded to TF32: a k octet per
    thread as two float4 stores when loaded as float4s (`octets` per thread), else one
    value at a time."""
    t, bk = tile.threads, tile.bk
    if octets:
        row = f"g_Bs[g_tid / {bk // 8} + g_e * {t // (bk // 8)}][(g_tid % {bk // 8}) * 8"
        lo, hi = "g_rb4[2 * g_e]", "g_rb4[2 * g_e + 1]"
        return ["#pragma unroll", f"for (int g_e = 0; g_e < {octets}; ++g_e) {{",
                f"*reinterpret_cast<float4*>(&{row}]) = make_float4(deepc_tf32({lo}.x),"
                f" deepc_tf32({hi}.x), deepc_tf32({lo}.y), deepc_tf32({hi}.y));",
                f"*reinterpret_cast<float4*>(&{row} + 4]) = make_float4(deepc_tf32({lo}.z),"
                f" deepc_tf32({hi}.z), deepc_tf32({lo}.w), deepc_tf32({hi}.w)); }}"]
    return ["#pragma unroll",
            f"for (int g_e = 0; g_e < {tile.bk * tile.bn // t}; ++g_e)"
            f" g_Bs[g_tid / {bk} + g_e * {t // bk}][{bpos(f'g_tid % {bk}')}]"
            " = deepc_tf32(g_rb[g_e]);"]


def accumulators(tile: GemmTile, init: str) -> list[str]:
    _, _, mi, ni = warp_grid(tile)
    return [f"float g_c[{mi}][{ni}][4];",
            "#pragma unroll",
            f"for (int g_i = 0; g_i < {mi}; ++g_i)",
            "#pragma unroll",
            f"  for (int g_j = 0; g_j < {ni}; ++g_j)",
            "#pragma unroll",
            f"    for (int g_q = 0; g_q < 4; ++g_q) g_c[g_i][g_j][g_q] = {init};"]


def step(tile: GemmTile) -> list[str]:
    """One K step: per k8, each warp's fragments from shared memory, then its mma grid."""
    _, _, mi, ni = warp_grid(tile)
    return [
        "{",
        *_warp_coords(tile),
        "#pragma unroll",
        f"for (int g_ks = 0; g_ks < {tile.bk}; g_ks += 8) {{",
        f"  unsigned g_a[{mi}][4], g_b[{ni}][2];",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {mi}; ++g_i) {{",
        "    const int g_r = g_wm + g_i * 16 + 2 * g_g;",  # rows g, g + 8 (see arow)
        "    const uint2 g_lo = *reinterpret_cast<const uint2*>(&g_As[g_ks + g_t][g_r]);",
        "    const uint2 g_hi = *reinterpret_cast<const uint2*>(&g_As[g_ks + g_t + 4][g_r]);",
        "    g_a[g_i][0] = g_lo.x; g_a[g_i][1] = g_lo.y;"
        " g_a[g_i][2] = g_hi.x; g_a[g_i][3] = g_hi.y; }",
        "#pragma unroll",
        f"  for (int g_j = 0; g_j < {ni}; ++g_j) {{",  # k = t, t + 4 (see bpos)
        "    const uint2 g_v = *reinterpret_cast<const uint2*>("
        "&g_Bs[g_wn + g_j * 8 + g_g][g_ks + 2 * g_t]);",
        "    g_b[g_j][0] = g_v.x; g_b[g_j][1] = g_v.y; }",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {mi}; ++g_i)",
        "#pragma unroll",
        f"    for (int g_j = 0; g_j < {ni}; ++g_j) deepc_mma_tf32(g_c[g_i][g_j], g_a[g_i],"
        " g_b[g_j]);",
        "}",
        "}",
    ]


def outputs(tile: GemmTile, it: str) -> tuple[list[str], str]:
    """Loops over the thread's accumulators, opening a block with their output (g_m, g_n),
    and the accumulator's name there."""
    _, _, mi, ni = warp_grid(tile)
    return [
        "{",
        *_warp_coords(tile),
        "#pragma unroll",
        f"for (int g_i = 0; g_i < {mi}; ++g_i)",
        "#pragma unroll",
        f"for (int g_j = 0; g_j < {ni}; ++g_j)",
        "#pragma unroll",
        "for (int g_q = 0; g_q < 4; ++g_q) {",
        f"const {it} g_m = g_m0 + g_wm + g_i * 16 + g_g + (g_q >> 1) * 8;",
        f"const {it} g_n = g_n0 + g_wn + g_j * 8 + 2 * g_t + (g_q & 1);",
    ], "g_c[g_i][g_j][g_q]"

"""CUDA C for a matrix-product stage (schedule/gpu_gemm_match.py): shared-memory tiles with
cooperative fetch and register tiling, optionally on TF32 tensor cores.

Each block computes a BM x BN tile of the (M, N) output space. Per step of BK along K the
block's threads fetch the A tile (BK x BM; threads walk M, so neighbouring threads read
neighbouring pixels) and the B tile (BK x BN; threads walk K, the weights' contiguous axis)
into registers, store them to shared memory, and fetch the next step's while computing this
one. The operands' index expressions are the loop IR's own, rendered after declaring the
loop variables decoded from the flat row/column/k index, so any fused prologue (padding,
scaling) and epilogue (bias, activation, residual add, several outputs) carry over as is.

SIMT: TX x (256/TX) threads, each BM/TX x BN/(256/TX) outputs in runs of four (16-byte
shared loads).
MMA: warps_m x warps_n warps, each a grid of m16n8k8 TF32 tiles (operands rounded with
cvt.rna); the B tile's columns XOR-swizzled by k (see _bcol).
Split-K (a tile's role "partial"): blockIdx.z's chunk of K, its sums stored to a partial
buffer instead of the epilogue; gemm_split.py renders the summing launch.
"""

from __future__ import annotations

from itertools import product

from deepc.backends.cstyle import Renderer
from deepc.backends.cuda import gemm_split as split
from deepc.backends.cuda.ktable import KTables
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Expr, Load, Var
from deepc.ir.loop import PrimFunc
from deepc.schedule.gpu_gemm_match import GemmParts, GemmTile

MMA_HELPERS = r"""
static __device__ __forceinline__ float deepc_tf32(float x) {
  unsigned r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x)); return __uint_as_float(r); }
static __device__ __forceinline__ void deepc_mma_tf32(float* c, const unsigned* a,
                                                      const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
"""


def _decode(axes: tuple[tuple[Var, int], ...], flat: str, it: str) -> list[str]:
    out, stride = [], 1
    for var, extent in reversed(axes):
        value = flat if stride == 1 else f"({flat} / {stride})"
        out.append(f"const {it} {var.name} = {value} % {extent};")
        stride *= extent
    return out


class _Direct:
    """An operand that is one load at base(side) + koff(k): the side part computed once per
    thread, the k part as `scale * k` or from a compile-time table (conv windows)."""

    def __init__(self, buf: str, side: Expr, k: dict[Var, int], axes: tuple[tuple[Var, int], ...]):
        self.buf, self.side = buf, side
        strides, stride = {}, 1
        for var, extent in reversed(axes):
            strides[var] = stride
            stride *= extent
        first = axes[-1][0]
        scale = k.get(first, 0)
        self.scale = scale if all(k.get(v, 0) == scale * strides[v] for v, _ in axes) else None
        self.table = [sum(k.get(v, 0) * i for (v, _), i in zip(axes, idx))
                      for idx in product(*(range(e) for _, e in axes))]

    def koff(self, table: str, k: str) -> str:
        return f"{self.scale} * {k}" if self.scale is not None else f"{table}[{k}]"


def _direct(x: Expr, side: tuple[tuple[Var, int], ...],
            k_axes: tuple[tuple[Var, int], ...]) -> _Direct | None:
    if not isinstance(x, Load) or x.source.scope != "global":
        return None
    try:
        a = affine(flat_offset(x.source.shape, x.indices))
    except (TypeError, ValueError):
        return None
    side_vars, k_vars = {v for v, _ in side}, {v for v, _ in k_axes}
    if not all(isinstance(t, Var) and t in side_vars | k_vars for t, _ in a.terms):
        return None
    k = {t: c for t, c in a.terms if t in k_vars}
    return _Direct(x.source.name, a.without(keep=side_vars).to_expr(), k, k_axes)


def render_gemm(r: Renderer, func: PrimFunc, parts: GemmParts, tile: GemmTile,
                tables: KTables) -> str:
    if tile.role == "reduce":
        return split.render_split_sum(r, func, parts, tile)
    it, t = r.index_type, tile.threads
    bm, bn, bk = tile.bm, tile.bn, tile.bk
    pad_a, pad_b = (8, 0) if tile.mma else (0, 4)
    a_per, b_per = bk * bm // t, bk * bn // t
    m, n = parts.m, parts.n
    # the K range: all of it, or blockIdx.z's chunk of a split-K
    klo, k = ("g_klo", "g_khi") if tile.role == "partial" else ("0", str(parts.k))
    cvt = "deepc_tf32" if tile.mma else ""
    a_expr, b_expr = r.expr(parts.a), r.expr(parts.b)
    kdec = " ".join(_decode(parts.k_axes, "g_k", it))
    ndec = " ".join(_decode(parts.n_axes, "g_n", it))
    da, db = _direct(parts.a, parts.m_axes, parts.k_axes), _direct(parts.b, parts.n_axes,
                                                                  parts.k_axes)
    # a warp's threads share k in the A tile (they walk M): a constant-memory table serves it
    ta = tables.name(da.table, bm % 32 == 0) if da is not None and da.scale is None else ""
    tb = tables.name(db.table, False) if db is not None and db.scale is None else ""
    kdec_a = "" if da is not None else kdec
    kdec_b = "" if db is not None else kdec
    if da is not None:
        a_expr = f"{da.buf}[g_abase + {da.koff(ta, 'g_k')}]"
    if db is not None:
        b_expr = f"{db.buf}[g_bbase[g_e] + {db.koff(tb, 'g_k')}]"
        ndec = ""

    def fetch(k0: str) -> list[str]:
        return [
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {a_per}; ++g_e) {{",
            f"  const {it} g_k = {k0} + g_tid / {bm} + g_e * {t // bm}; float g_v = 0.0f;",
            f"  if (g_am < {m} && g_k < {k}) {{ {kdec_a} g_v = {a_expr}; }}",
            "  g_ra[g_e] = g_v; }",
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {b_per}; ++g_e) {{",
            f"  const {it} g_n = g_n0 + g_tid / {bk} + g_e * {t // bk};",
            f"  const {it} g_k = {k0} + g_tid % {bk}; float g_v = 0.0f;",
            f"  if (g_n < {n} && g_k < {k}) {{ {ndec} {kdec_b} g_v = {b_expr}; }}",
            "  g_rb[g_e] = g_v; }",
        ]

    # __restrict__ even where the planner may run the kernel in place (a residual add's input
    # and the output share memory): the only aliased pairs are an input and the output read
    # and written at the same element, once, by one thread, the load feeding the store; and
    # without it every epilogue load waits for the store before it (ResNet-18's residual
    # convs took ~30% longer)
    plain = {k: v for k, v in func.attrs.items() if k != "may_alias"}
    partial = tile.role == "partial"  # stores its sums to the split-K buffer, not the outputs
    sig = r.signature(PrimFunc(func.name, func.params, func.body, plain),
                      writes=(tile.scratch,) if partial else ())
    sig = sig.replace(f"void {func.name}(",
                      f"void __launch_bounds__({t}, {tile.min_blocks}) {func.name}(")
    store = split.partial_store(parts, tile) if partial else None
    lines = [
        f"{sig} {{",
        f"__shared__ float g_As[{bk}][{bm + pad_a}];",
        f"__shared__ float g_Bs[{bk}][{bn + pad_b}];",
        "const int g_tid = threadIdx.x;",
        *split.split_range(parts, tile, it),
        f"const {it} g_m0 = (({it})blockIdx.x) * {bm}, g_n0 = (({it})blockIdx.y) * {bn};",
        f"const {it} g_am = g_m0 + g_tid % {bm};",
        f"float g_ra[{a_per}], g_rb[{b_per}];",
        *_compute_decls(tile, r.expr(parts.init)),
        "{",  # the A rows' loop variables, fixed for the whole K loop
        f"const {it} g_amc = g_am < {m} ? g_am : {m - 1};",
        *_decode(parts.m_axes, "g_amc", it),
        *([f"const {it} g_abase = {r.expr(da.side)};"] if da is not None else []),
        *(_bbase(r, parts, tile, db.side) if db is not None else []),
        *fetch(klo),
        f"for ({it} g_k0 = {klo}; g_k0 < {k}; g_k0 += {bk}) {{",
        "#pragma unroll",
        f"for (int g_e = 0; g_e < {a_per}; ++g_e)"
        f" g_As[g_tid / {bm} + g_e * {t // bm}][g_tid % {bm}] = {cvt}(g_ra[g_e]);",
        "#pragma unroll",
        f"for (int g_e = 0; g_e < {b_per}; ++g_e)"
        f" g_Bs[g_tid % {bk}][{_bcol(tile, f'g_tid / {bk} + g_e * {t // bk}', f'g_tid % {bk}')}]"
        f" = {cvt}(g_rb[g_e]);",
        "__syncthreads();",
        f"if (g_k0 + {bk} < {k}) {{",
        *fetch(f"g_k0 + {bk}"),
        "}",
        *(_mma_step(tile) if tile.mma else _simt_step(tile)),
        "__syncthreads();",
        "}",
        "}",
        *_epilogue(r, parts, tile, store),
        "}",
    ]
    return "\n".join(lines)


def _bbase(r: Renderer, parts: GemmParts, tile: GemmTile, side: Expr) -> list[str]:
    """The B operand's per-column offsets, one per fetched column, before the K loop."""
    it, t, bk, per = r.index_type, tile.threads, tile.bk, tile.bk * tile.bn // tile.threads
    return [
        f"{it} g_bbase[{per}];",
        "#pragma unroll",
        f"for (int g_e = 0; g_e < {per}; ++g_e) {{",
        f"  {it} g_n = g_n0 + g_tid / {bk} + g_e * {t // bk};",
        f"  g_n = g_n < {parts.n} ? g_n : {parts.n - 1};",
        f"  {' '.join(_decode(parts.n_axes, 'g_n', it))}",
        f"  g_bbase[g_e] = {r.expr(side)}; }}",
    ]


def _bcol(tile: GemmTile, col: str, k: str) -> str:
    """The B tile's shared column of (k, col). MMA tiles store B with the threads walking K
    (the weights' contiguous axis) and read it in fragments that walk N; an unpadded row
    with columns XOR-swizzled by k keeps both bank-conflict free: the 32 k of a store hit 32
    banks, and a fragment's 4 k x 8 columns too (the swizzle's bits 3-4 come from k % 4)."""
    if not tile.mma:
        return col
    return f"({col}) ^ ((({k}) & 3) << 3 | (({k}) >> 2 & 7))"


def _compute_decls(tile: GemmTile, init: str) -> list[str]:
    if tile.mma:
        mi, ni = tile.bm // tile.warps_m // 16, tile.bn // tile.warps_n // 8
        return [f"float g_c[{mi}][{ni}][4];",
                "#pragma unroll",
                f"for (int g_i = 0; g_i < {mi}; ++g_i)",
                "#pragma unroll",
                f"  for (int g_j = 0; g_j < {ni}; ++g_j)",
                "#pragma unroll",
                f"    for (int g_q = 0; g_q < 4; ++g_q) g_c[g_i][g_j][g_q] = {init};"]
    tm, tn = tile.bm // tile.tx, tile.bn // (tile.threads // tile.tx)
    return [f"float g_c[{tm}][{tn}];",
            "#pragma unroll",
            f"for (int g_i = 0; g_i < {tm}; ++g_i)",
            "#pragma unroll",
            f"  for (int g_j = 0; g_j < {tn}; ++g_j) g_c[g_i][g_j] = {init};"]


def _simt_step(tile: GemmTile) -> list[str]:
    """Thread (tm, tn) = (tid % TX, tid / TX) owns rows 4*tm + 4*TX*i + 0..3 and columns
    4*tn + 4*TY*j + 0..3: 16-byte shared loads, four values each."""
    tx, ty = tile.tx, tile.threads // tile.tx
    tm, tn = tile.bm // tx, tile.bn // ty
    return [
        "#pragma unroll",
        f"for (int g_kk = 0; g_kk < {tile.bk}; ++g_kk) {{",
        f"  float g_a[{tm}], g_b[{tn}];",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {tm // 4}; ++g_i) {{",
        "    const float4 g_v = *reinterpret_cast<const float4*>("
        f"&g_As[g_kk][4 * (g_tid % {tx}) + {4 * tx} * g_i]);",
        "    g_a[4 * g_i] = g_v.x; g_a[4 * g_i + 1] = g_v.y; g_a[4 * g_i + 2] = g_v.z;"
        " g_a[4 * g_i + 3] = g_v.w; }",
        "#pragma unroll",
        f"  for (int g_j = 0; g_j < {tn // 4}; ++g_j) {{",
        "    const float4 g_v = *reinterpret_cast<const float4*>("
        f"&g_Bs[g_kk][4 * (g_tid / {tx}) + {4 * ty} * g_j]);",
        "    g_b[4 * g_j] = g_v.x; g_b[4 * g_j + 1] = g_v.y; g_b[4 * g_j + 2] = g_v.z;"
        " g_b[4 * g_j + 3] = g_v.w; }",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {tm}; ++g_i)",
        "#pragma unroll",
        f"    for (int g_j = 0; g_j < {tn}; ++g_j)"
        " g_c[g_i][g_j] = fmaf(g_a[g_i], g_b[g_j], g_c[g_i][g_j]);",
        "}",
    ]


def _mma_step(tile: GemmTile) -> list[str]:
    wm, wn = tile.bm // tile.warps_m, tile.bn // tile.warps_n
    mi, ni = wm // 16, wn // 8
    return [
        "{",
        "const int g_lane = g_tid % 32, g_g = g_lane / 4, g_t = g_lane % 4;",
        f"const int g_wm = (g_tid / 32 % {tile.warps_m}) * {wm};",
        f"const int g_wn = (g_tid / 32 / {tile.warps_m}) * {wn};",
        "#pragma unroll",
        f"for (int g_ks = 0; g_ks < {tile.bk}; g_ks += 8) {{",
        f"  unsigned g_a[{mi}][4], g_b[{ni}][2];",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {mi}; ++g_i) {{",
        "    const int g_r = g_wm + g_i * 16 + g_g;",
        "    g_a[g_i][0] = __float_as_uint(g_As[g_ks + g_t][g_r]);",
        "    g_a[g_i][1] = __float_as_uint(g_As[g_ks + g_t][g_r + 8]);",
        "    g_a[g_i][2] = __float_as_uint(g_As[g_ks + g_t + 4][g_r]);",
        "    g_a[g_i][3] = __float_as_uint(g_As[g_ks + g_t + 4][g_r + 8]); }",
        "#pragma unroll",
        f"  for (int g_j = 0; g_j < {ni}; ++g_j) {{",
        "    const int g_col = g_wn + g_j * 8 + g_g;",
        "    g_b[g_j][0] = __float_as_uint("
        f"g_Bs[g_ks + g_t][{_bcol(tile, 'g_col', 'g_ks + g_t')}]);",
        "    g_b[g_j][1] = __float_as_uint("
        f"g_Bs[g_ks + g_t + 4][{_bcol(tile, 'g_col', 'g_ks + g_t + 4')}]); }}",
        "#pragma unroll",
        f"  for (int g_i = 0; g_i < {mi}; ++g_i)",
        "#pragma unroll",
        f"    for (int g_j = 0; g_j < {ni}; ++g_j) deepc_mma_tf32(g_c[g_i][g_j], g_a[g_i],"
        " g_b[g_j]);",
        "}",
        "}",
    ]


def epilogue_body(r: Renderer, parts: GemmParts, value: str) -> list[str]:
    """Output (g_m, g_n)'s fused epilogue on its sum `value`, where in bounds."""
    it, acc = r.index_type, parts.acc.buffer.name
    return [
        f"if (g_m < {parts.m} && g_n < {parts.n}) {{",
        *_decode(parts.m_axes, "g_m", it), *_decode(parts.n_axes, "g_n", it),
        f"float {acc}[1]; {acc}[0] = {value};",
        *[line.strip() for s in parts.epilogue for line in r.stmt(s, 0)],
        "}",
    ]


def _epilogue(r: Renderer, parts: GemmParts, tile: GemmTile, store: str | None) -> list[str]:
    """Each accumulator to its output (or, given `store`, a statement on VALUE: a split-K
    chunk's partial sum)."""
    it = r.index_type
    inner = ([f"if (g_m < {parts.m} && g_n < {parts.n}) {{ {store} }}"] if store is not None
             else epilogue_body(r, parts, "VALUE"))
    if tile.mma:
        wm, wn = tile.bm // tile.warps_m, tile.bn // tile.warps_n
        mi, ni = wm // 16, wn // 8
        head = [
            "{",
            "const int g_lane = g_tid % 32, g_g = g_lane / 4, g_t = g_lane % 4;",
            f"const int g_wm = (g_tid / 32 % {tile.warps_m}) * {wm};",
            f"const int g_wn = (g_tid / 32 / {tile.warps_m}) * {wn};",
            "#pragma unroll",
            f"for (int g_i = 0; g_i < {mi}; ++g_i)",
            "#pragma unroll",
            f"for (int g_j = 0; g_j < {ni}; ++g_j)",
            "#pragma unroll",
            "for (int g_q = 0; g_q < 4; ++g_q) {",
            f"const {it} g_m = g_m0 + g_wm + g_i * 16 + g_g + (g_q >> 1) * 8;",
            f"const {it} g_n = g_n0 + g_wn + g_j * 8 + 2 * g_t + (g_q & 1);",
        ]
        value = "g_c[g_i][g_j][g_q]"
    else:
        tx, ty = tile.tx, tile.threads // tile.tx
        head = [
            "{",
            "#pragma unroll",
            f"for (int g_i = 0; g_i < {tile.bm // tx}; ++g_i)",
            "#pragma unroll",
            f"for (int g_j = 0; g_j < {tile.bn // ty}; ++g_j) {{",
            f"const {it} g_m = g_m0 + 4 * (g_tid % {tx}) + (g_i & 3) + {4 * tx} * (g_i >> 2);",
            f"const {it} g_n = g_n0 + 4 * (g_tid / {tx}) + (g_j & 3) + {4 * ty} * (g_j >> 2);",
        ]
        value = "g_c[g_i][g_j]"
    inner = [line.replace("VALUE", value) for line in inner]
    return [*head, *inner, "}", "}"]

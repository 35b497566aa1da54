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
MMA: warps_m x warps_n warps, each a grid of m16n8k8 TF32 tiles (operands rounded to
nearest on their way to shared memory); the A tile's rows and the B tile's k interleaved so
that each fragment register pair is one 8-byte shared load (gemm_mma.py), weights loaded as
float4 pairs where their k runs allow. Bounds: rows and columns past M and N are clamped to
the last (their sums are never stored), so loads need no guard except a partial last k-step.
Split-K (a tile's role "partial"): blockIdx.z's chunk of K, its sums stored to a partial
buffer instead of the epilogue; gemm_split.py renders the summing launch.
"""

from __future__ import annotations

from itertools import product

from deepc.backends.cstyle import Renderer
from deepc.backends.cuda import gemm_mma as mma
from deepc.backends.cuda import gemm_split as split
from deepc.backends.cuda.ktable import KTables
from deepc.ir.affine import Affine, affine, flat_offset
from deepc.ir.expr import Expr, Load, Var
from deepc.ir.loop import PrimFunc
from deepc.schedule.gpu_gemm_match import GemmParts, GemmTile


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

    def __init__(self, buf: str, side: Affine, k: dict[Var, int],
                 axes: tuple[tuple[Var, int], ...]):
        self.buf, self.side = buf, side.to_expr()
        self.side_by4 = side.const % 4 == 0 and all(c % 4 == 0 for _, c in side.terms)
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
    return _Direct(x.source.name, a.without(keep=side_vars), k, k_axes)


def _padded(table: list[int], bk: int) -> list[int]:
    """A k table to a whole number of K steps, its last offset repeated (a partial last step
    reads valid addresses, then zeroes them)."""
    return table + table[-1:] * (-len(table) % bk)


def render_gemm(r: Renderer, func: PrimFunc, parts: GemmParts, tile: GemmTile,
                tables: KTables) -> str:
    if tile.role == "reduce":
        return split.render_split_sum(r, func, parts, tile)
    it, t = r.index_type, tile.threads
    bm, bn, bk = tile.bm, tile.bn, tile.bk
    a_per, b_per = bk * bm // t, bk * bn // t
    m, n = parts.m, parts.n
    # the K range: all of it, or blockIdx.z's chunk of a split-K
    klo, k = ("g_klo", "g_khi") if tile.role == "partial" else ("0", str(parts.k))
    a_expr, b_expr = r.expr(parts.a), r.expr(parts.b)
    kdec = " ".join(_decode(parts.k_axes, "g_k", it))
    ndec = " ".join(_decode(parts.n_axes, "g_n", it))
    da, db = _direct(parts.a, parts.m_axes, parts.k_axes), _direct(parts.b, parts.n_axes,
                                                                  parts.k_axes)
    # a warp's threads share k in the A tile (they walk M): a constant-memory table serves it
    tail = parts.k % bk != 0  # the last K step is partial
    ta = (tables.name(_padded(da.table, bk), bm % 32 == 0)
          if da is not None and da.scale is None else "")
    tb = tables.name(_padded(db.table, bk), False) if db is not None and db.scale is None else ""

    def operand(d: _Direct | None, table: str, base: str, expr: str, guard: str) -> str:
        """`g_v = ` the operand at (row or column, g_k); a direct load needs no bounds check
        (rows and columns are clamped, k too), only a zero past K in a partial last step."""
        if d is None:
            return f"float g_v = 0.0f; if ({guard} && g_k < {k}) {{ {expr} }}"
        kk = f"(g_k < {parts.k} ? g_k : {parts.k - 1})" if tail and d.scale is not None else "g_k"
        value = f"{d.buf}[{base} + {d.koff(table, kk)}]"
        return (f"const float g_x = {value}; const float g_v = g_k < {k} ? g_x : 0.0f;" if tail
                else f"const float g_v = {value};")

    a_load = operand(da, ta, "g_abase", f"{kdec} g_v = {a_expr};", f"g_am < {m}")
    b_load = operand(db, tb, "g_bbase[g_e]", f"{ndec} {kdec} g_v = {b_expr};", f"g_n < {n}")
    # MMA tiles load B's k-contiguous runs (weights) as float4 pairs, `octets` k octets per
    # thread (0: one value at a time)
    vec_b = (tile.mma and db is not None and db.scale == 1 and db.side_by4 and not tail
             and bk % 8 == 0 and bn * bk % (8 * t) == 0)
    octets = bn * bk // (8 * t) if vec_b else 0
    b_rows = (f"g_tid / {bk // 8}", t // (bk // 8)) if octets else (f"g_tid / {bk}", t // bk)

    def fetch(k0: str) -> list[str]:
        a = [
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {a_per}; ++g_e) {{",
            f"  const {it} g_k = {k0} + g_tid / {bm} + g_e * {t // bm};",
            f"  {a_load}",
            "  g_ra[g_e] = g_v; }",
        ]
        if octets:
            assert db is not None
            at = f"{db.buf} + g_bbase[g_e] + {k0} + (g_tid % {bk // 8}) * 8"
            return [*a, "#pragma unroll", f"for (int g_e = 0; g_e < {octets}; ++g_e) {{",
                    f"  g_rb4[2 * g_e] = *reinterpret_cast<const float4*>({at});",
                    f"  g_rb4[2 * g_e + 1] = *reinterpret_cast<const float4*>({at} + 4); }}"]
        return [
            *a,
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {b_per}; ++g_e) {{",
            f"  const {it} g_n = g_n0 + g_tid / {bk} + g_e * {t // bk};",
            f"  const {it} g_k = {k0} + g_tid % {bk};",
            f"  {b_load}",
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
        # padded so that fragment loads (MMA) and float4 loads (SIMT) avoid bank conflicts
        *([f"__shared__ float g_As[{bk}][{bm + 8}];", f"__shared__ float g_Bs[{bn}][{bk + 8}];"]
          if tile.mma else [f"__shared__ float g_As[{bk}][{bm}];",
                            f"__shared__ float g_Bs[{bk}][{bn + 4}];"]),
        "const int g_tid = threadIdx.x;",
        *split.split_range(parts, tile, it),
        f"const {it} g_m0 = (({it})blockIdx.x) * {bm}, g_n0 = (({it})blockIdx.y) * {bn};",
        f"const {it} g_am = g_m0 + g_tid % {bm};",
        f"float g_ra[{a_per}];",
        f"float4 g_rb4[{2 * octets}];" if octets else f"float g_rb[{b_per}];",
        *(mma.accumulators if tile.mma else _simt_accumulators)(tile, r.expr(parts.init)),
        "{",  # the A rows' loop variables, fixed for the whole K loop
        f"const {it} g_amc = g_am < {m} ? g_am : {m - 1};",
        *_decode(parts.m_axes, "g_amc", it),
        *([f"const {it} g_abase = {r.expr(da.side)};"] if da is not None else []),
        *(_bbase(r, parts, db.side, b_rows, octets or b_per)
          if db is not None else []),
        *fetch(klo),
        f"for ({it} g_k0 = {klo}; g_k0 < {k}; g_k0 += {bk}) {{",
        "#pragma unroll",
        f"for (int g_e = 0; g_e < {a_per}; ++g_e)"
        f" g_As[g_tid / {bm} + g_e * {t // bm}]"
        + (f"[{mma.arow(f'g_tid % {bm}')}] = deepc_tf32(g_ra[g_e]);" if tile.mma
           else f"[g_tid % {bm}] = g_ra[g_e];"),
        *(mma.store_b(tile, octets) if tile.mma else _store_b_simt(tile)),
        "__syncthreads();",
        f"if (g_k0 + {bk} < {k}) {{",
        *fetch(f"g_k0 + {bk}"),
        "}",
        *(mma.step(tile) if tile.mma else _simt_step(tile)),
        "__syncthreads();",
        "}",
        "}",
        *_epilogue(r, parts, tile, store),
        "}",
    ]
    return "\n".join(lines)


def _bbase(r: Renderer, parts: GemmParts, side: Expr, rows: tuple[str, int],
           per: int) -> list[str]:
    """The B operand's per-column offsets, one per fetched column (column `first + e *
    step` of the tile for rows = (first, step)), before the K loop."""
    it = r.index_type
    return [
        f"{it} g_bbase[{per}];",
        "#pragma unroll",
        f"for (int g_e = 0; g_e < {per}; ++g_e) {{",
        f"  {it} g_n = g_n0 + {rows[0]} + g_e * {rows[1]};",
        f"  g_n = g_n < {parts.n} ? g_n : {parts.n - 1};",
        f"  {' '.join(_decode(parts.n_axes, 'g_n', it))}",
        f"  g_bbase[g_e] = {r.expr(side)}; }}",
    ]


def _store_b_simt(tile: GemmTile) -> list[str]:
    """The B registers to shared memory [k][n]."""
    t, bk = tile.threads, tile.bk
    return ["#pragma unroll",
            f"for (int g_e = 0; g_e < {tile.bk * tile.bn // t}; ++g_e)"
            f" g_Bs[g_tid % {bk}][g_tid / {bk} + g_e * {t // bk}] = g_rb[g_e];"]


def _simt_accumulators(tile: GemmTile, init: str) -> list[str]:
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
        head, value = mma.outputs(tile, it)
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

"""The tiled matrix-product primitive: a matched GEMM stage (gpu_gemm_match.py) to a loop nest
of shared-memory tiles with cooperative fetch and register tiling, SIMT or TF32 tensor cores.

Each block computes a BM x BN tile of the (M, N) output space. Per step of BK along K the
block's threads fetch the A tile (BK x BM; threads walk M, so neighbouring threads read
neighbouring pixels) and the B tile (BK x BN; threads walk K, the weights' contiguous axis)
into registers, store them to shared memory, and fetch the next step's while computing this
one; or (stages > 1, targets with cp.async) copy them straight into a ring of shared slots
several steps ahead (gpu_gemm_pipeline.py). The operands are the stage's own index
expressions under lets of the loop variables decoded from the flat row/column/k index, so
fused prologues and epilogues carry over as they are. Rows and columns past M and N are
clamped to the last (their sums are never stored), so loads need no guard except in a
partial last k-step. Operands that are one affine load read base(row) + koff(k), koff from
a compile-time table for conv windows; a conv's zero padding is a per-thread mask of the
window taps inside the input (gpu_gemm_operand.py), so no padded copy is read.
SIMT: TX x (threads/TX) threads, each BM/TX x BN/(threads/TX) outputs in runs of four
(float4 shared loads). TF32: gpu_gemm_mma.py. Split-K ("partial" = the partial sums'
buffer float32[split][N][M]): blockIdx.z's chunk of kc, stored there instead of the
epilogue; gpu_split.py adds the chunks.
"""

from __future__ import annotations

from collections.abc import Callable

from deepc.errors import VerifyError
from deepc.ir.affine import flat_offset
from deepc.ir.expr import Const, Expr, FlatLoad, Lane, Load, Var, intrin, select
from deepc.ir.loop import (
    Allocate,
    Buffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Store,
    VectorStore,
)
from deepc.ir.loop import Stmt as S
from deepc.ir.rewrite import substitute
from deepc.schedule import gpu_gemm_mma as mma
from deepc.schedule import gpu_gemm_pipeline as pipe
from deepc.schedule.gpu_build import bind, decode, kernel, lets, local, seq, shr, unrolled, v
from deepc.schedule.gpu_gemm_match import GemmParts, match_gemm
from deepc.schedule.gpu_gemm_operand import Operand, direct
from deepc.schedule.stmt_rewrite import map_stmt


def tile_gemm(func: PrimFunc, bm: int, bn: int, bk: int, threads: int = 256,
              mma_tf32: bool = False, warps_m: int = 1, warps_n: int = 1, tx: int = 16,
              min_blocks: int = 2, split: int = 1, kc: int = 0, partial: str = "",
              stages: int = 1) -> PrimFunc:
    """Tile a matrix-product stage (knobs: the tile bm x bn x bk, threads, TF32 mma with
    warps_m x warps_n warps or SIMT with tx threads along M, blocks per SM for the launch
    bounds, a split-K of `split` chunks of `kc` into the buffer `partial`, and `stages`:
    1 fetches through registers as below, 2-4 a cp.async ring (gpu_gemm_pipeline.py) in
    dynamic shared memory, the kernel's "dynamic_shared" bytes).

        for i0..in { alloc acc[1]; acc[0] = C; for r.. { acc[0] += X * Y }; out.. = f(acc[0]) }
    tile_gemm(64, 64, 16) ->
        blockIdx.x for bx in 0..M/64 { blockIdx.y for by in 0..N/64 {
          alloc g_As: float32[16x64] shared; alloc g_Bs: float32[16x68] shared
          threadIdx.x for g_tid in 0..256 {
            alloc g_ra, g_rb, g_c local; g_c[..] = C; fetch(0) -> g_ra, g_rb
            for g_k0 in 0..K step 16 { g_ra -> g_As, g_rb -> g_Bs; barrier(); fetch(next)
                                  g_c += g_As x g_Bs (float4 loads, fma); barrier() }
            unrolled for g_i, g_j { let i0.., n.. = decode(g_m, g_n); acc[0] = g_c[g_i, g_j]
                                    out.. = f(acc[0]) } } } }
    """
    parts = match_gemm(func)
    if parts is None:
        raise VerifyError(f"{func.name}: tile_gemm needs a matrix-product stage")
    if partial and parts.g_axes:
        raise VerifyError(f"{func.name}: a grouped product's blockIdx.z is its group; no split-K")
    t, m, n, K = threads, parts.m, parts.n, parts.k
    a_per, b_per = bk * bm // t, bk * bn // t
    # a group's index (blockIdx.z) is fixed per block: part of each row's or column's base
    # A may be guarded (a conv's padding) or carry a prologue; passed positionally: tests
    # patch `direct` with a function of positional arguments
    da = direct(parts.a, parts.m_axes + parts.g_axes, parts.k_axes, True)
    if da is not None and any(end % bk for end, _ in da.pieces):
        da = None  # a concat part ending within a k-step: computed element by element
    db = direct(parts.b, parts.n_axes + parts.g_axes, parts.k_axes)
    tail = K % bk != 0
    tid, gm0, gn0, gam, gamc = v("g_tid"), v("g_m0"), v("g_n0"), v("g_am"), v("g_amc")
    klo: Expr = v("g_klo") if partial else Const(0, "int64")
    khi: Expr = v("g_khi") if partial else Const(K, "int64")
    ta = (Buffer(f"{func.name}_ka", (len(da.padded(bk)),), "int64",
                 "constant" if bm % 32 == 0 else "global")
          if da is not None and da.scale is None else None)
    tb = (Buffer(f"{func.name}_kb", (len(db.padded(bk)),), "int64", "global")
          if db is not None and db.scale is None else None)
    amask = Var("g_amask", da.mask.dtype) if da is not None and da.mask is not None else None
    op_a, op_b = (Operand(da, parts.a, ta, khi, parts, tail, amask),
                  Operand(db, parts.b, tb, khi, parts, tail))
    # a concat along K read in place: each k-step lies in one part (a block-uniform choice)
    a_parts = [(end, Operand(d, parts.a, ta, khi, parts, tail), d.side)
               for end, d in (da.pieces if da is not None else [])]
    staged = stages > 1
    vec_b = (mma_tf32 and db is not None and db.scale == 1 and db.side_by4 and bk % 8 == 0
             and bn * bk % (8 * t) == 0)
    # B's floats per copy: one stage, a k octet per thread as two float4 loads (whole steps
    # only); pipelined, 16-byte cp.asyncs of 4 k, zero-filled past K (a multiple of 4)
    width = (4 if vec_b and K % 4 == 0 else 1) if staged else (8 if vec_b and not tail else 1)
    per_row = bk // width
    b_first, b_step, b_count = tid // per_row, t // per_row, bn * bk // (width * t)
    octets = b_count if width == 8 else 0
    bbase = [v(f"g_bbase{e}") for e in range(b_count)] if db is not None else []
    a_shape, b_shape = pipe.shared_shapes(bm, bn, bk, mma_tf32, stages)
    As = Buffer("g_As", a_shape, "float32", "shared")
    Bs = Buffer("g_Bs", b_shape, "float32", "shared")
    ra = Buffer("g_ra", (a_per,), "float32", "local")
    rb = Buffer("g_rb4", (2 * octets,), "float32x4", "local") if octets else \
        Buffer("g_rb", (b_per,), "float32", "local")
    tile = mma.Tile(bm, bn, bk, t, warps_m, warps_n, tx) if mma_tf32 else None
    acc_shape = mma.acc_shape(tile) if tile else (bm // tx, bn // (t // tx))
    c = Buffer("g_c", acc_shape, "float32", "local")
    a_col = mma.arow(tid % bm) if tile else tid % bm
    abase = v("g_abase") if da else Const(0, "int64")
    gk, gn = v("g_k"), v("g_n")

    def a_step(k0: Expr, make: Callable[[Operand, Expr], S]) -> S:
        """make(operand, base) for the k-step at k0: A's, or its concat part's."""
        if not a_parts:
            return make(op_a, abase)
        out: S | None = None
        for end, op, side in reversed(a_parts):
            one = lets([(v("g_abase"), side)], make(op, v("g_abase")))
            out = one if out is None else IfThenElse(k0 < end, one, out)
        assert out is not None
        return out

    def a_tile(k0: Expr, put: Callable[[Expr, Expr], S]) -> S:
        """put(e, gk) for each A element the thread fetches: column tid % bm, k rows apart."""
        return unrolled("g_e", a_per, lambda e: lets(
            [(gk, k0 + tid // bm + e * (t // bm))], put(e, gk)))

    def b_tile(k0: Expr, put: Callable[[Expr, Expr, Expr, Expr], S]) -> S:
        """put(e, n, k, base) for each B element the thread fetches one by one (tile column
        n, tile k), its column's offset `base` where B is direct."""
        def one(e: Expr, base: Expr) -> S:
            nl, kl = tid // bk + e * (t // bk), tid % bk
            return lets([(gn, gn0 + nl), (gk, k0 + kl)], put(e, nl, kl, base))
        if db is None:
            return unrolled("g_e", b_per, lambda e: one(e, Const(0, "int64")))
        return seq(*(one(Const(e, "int64"), bbase[e]) for e in range(b_per)))

    def fetch(k0: Expr) -> S:
        a = a_step(k0, lambda op, base: a_tile(
            k0, lambda e, gk: op.load(ra, e, base, gam < m, gk, [])))
        if octets:
            assert db is not None
            at = [bbase[e] + k0 + (tid % (bk // 8)) * 8 for e in range(octets)]
            return seq(a, *(seq(Store(rb, (Const(2 * e, "int64"),),
                                      FlatLoad(db.buf, at[e], "float32x4")),
                                Store(rb, (Const(2 * e + 1, "int64"),),
                                      FlatLoad(db.buf, at[e] + 4, "float32x4")))
                            for e in range(octets)))
        return seq(a, b_tile(k0, lambda e, nl, kl, base: op_b.load(
            rb, e, base, gn < n, gk, decode(parts.n_axes, gn))))

    def fill(k0: Expr, slot: Expr) -> S:
        """One k step's tiles into a ring slot (cp.async where an operand is one load)."""
        a = a_step(k0, lambda op, base: a_tile(k0, lambda e, gk: op.to_shared(
            As, (slot, tid // bm + e * (t // bm), a_col), base, gam < m, gk, [])))
        if width == 4:
            assert db is not None
            kq = (tid % per_row) * 4
            return seq(a, *(pipe.copy(Bs, (slot, b_first + e * b_step, kq), db.buf,
                                      bbase[e] + k0 + kq, 4, k0 + kq < khi if tail else None)
                            for e in range(b_count)))
        return seq(a, b_tile(k0, lambda e, nl, kl, base: op_b.to_shared(
            Bs, (slot, nl, kl) if tile else (slot, kl, nl), base, gn < n, gk,
            decode(parts.n_axes, gn))))

    def base_lets() -> list[tuple[Var, Expr]]:
        out: list[tuple[Var, Expr]] = [(gamc, select(gam < m, gam, m - 1)),
                                       *decode(parts.m_axes, gamc)]
        if da is not None and not a_parts:
            out.append((v("g_abase"), da.side))
        if amask is not None and da is not None and da.mask is not None:
            out.append((amask, da.mask))  # the taps inside the input, for this row
        if db is not None:  # each fetched column's offset, its clamped column decoded
            for e in range(b_count):
                gn = v(f"g_nb{e}")
                col = gn0 + b_first + e * b_step
                out += [(gn, select(col < n, col, n - 1)),
                        (bbase[e], substitute(db.side, dict(decode(parts.n_axes, gn))))]
        return out

    def compute(slot: Expr | None) -> S:
        return (mma.step(tile, As, Bs, c, tid, slot) if tile else
                _simt_step(bm, bn, bk, t, tx, As, Bs, c, tid, slot))

    if staged:
        main = lets(base_lets(), pipe.pipelined(stages, bk, klo, khi, fill, compute))
    else:
        gk0 = v("g_k0")
        def a_value(e: Expr) -> Expr:  # a fetched element, its prologue applied late
            value = op_a.late(Load(ra, (e,)), gk0 + tid // bm + e * (t // bm))
            value = Load(ra, (e,)) if value is None else value
            return intrin("tf32_round", value) if tile else value

        store_a = unrolled("g_e", a_per, lambda e: Store(
            As, (tid // bm + e * (t // bm), a_col), a_value(e)))
        store_b = mma.store_b(tile, Bs, rb, tid, octets) if tile else unrolled(
            "g_e", b_per, lambda e: Store(Bs, (tid % bk, tid // bk + e * (t // bk)),
                                          Load(rb, (e,))))
        # g_k0 itself the induction variable to the chunk's end: a step count instead (and
        # g_k0 derived from it) cost 9 more registers in ResNet-18's split-K convs
        kloop = For(gk0, khi, ForKind.SERIAL, seq(
            store_a, store_b, Evaluate("barrier"),
            IfThenElse(gk0 + bk < khi, fetch(gk0 + bk)), compute(None), Evaluate("barrier")),
            start=klo, step=bk)
        main = lets(base_lets(), seq(fetch(klo), kloop))
    init = _fill(c, parts.init)
    sums = _partial_buf(func, partial) if partial else None
    out = _epilogue(parts, tile, c, tid, bm, bn, t, tx, sums)
    body = lets(
        [(gm0, v("g_bx") * bm), (gn0, v("g_by") * bn),
         *([(klo, v("g_bz") * kc), (khi, select(klo + kc < K, klo + kc, K))]  # type: ignore[list-item]
           if partial else []),
         (gam, gm0 + tid % bm)],
        local(c.name, c.shape, c.dtype, seq(init, main, out)) if staged else
        local(ra.name, ra.shape, ra.dtype, local(rb.name, rb.shape, rb.dtype, local(
            c.name, c.shape, c.dtype, seq(init, main, out)))))
    body = Allocate(As, Allocate(Bs, bind([("g_tid", t, "threadIdx.x")], body)))
    grid = [("g_bx", -(-m // bm), "blockIdx.x"), ("g_by", -(-n // bn), "blockIdx.y")]
    if partial:
        grid.append(("g_bz", split, "blockIdx.z"))
    elif len(parts.g_axes) == 1:
        (group, groups), = parts.g_axes
        grid.append((group.name, groups, "blockIdx.z"))
    elif parts.g_axes:  # a batched matmul's batch and head loops, from one blockIdx.z
        grid.append(("g_bg", parts.groups, "blockIdx.z"))
        body = lets(decode(parts.g_axes, v("g_bg"))[::-1], body)
    body = bind(grid, body)
    for table, d in ((tb, db), (ta, da)):
        if table is not None and d is not None:
            body = Allocate(table, body, tuple(d.padded(bk)))
    # __restrict__ even where the planner may run the kernel in place (a residual add's input
    # and the output share memory): the only aliased pairs are an input and the output read
    # and written at the same element, once, by one thread, the load feeding the store; and
    # without it every epilogue load waits for the store before it (ResNet-18's residual
    # convs took ~30% longer)
    return kernel(func, body, may_alias=None, launch_bounds=(t, min_blocks),
                  dynamic_shared=pipe.shared_bytes(bm, bn, bk, mma_tf32, stages) if staged
                  else None)


def _partial_buf(func: PrimFunc, name: str) -> Buffer:
    return next(b for b in func.params if b.name == name)


def _fill(buf: Buffer, value: Expr) -> S:
    names = ("g_i", "g_j", "g_q")[:len(buf.shape)]

    def nest(d: int, idx: tuple[Expr, ...]) -> S:
        if d == len(buf.shape):
            return Store(buf, idx, value)
        return unrolled(names[d], buf.shape[d], lambda x: nest(d + 1, (*idx, x)))
    return nest(0, ())


def _simt_step(bm: int, bn: int, bk: int, t: int, tx: int, As: Buffer, Bs: Buffer,
               c: Buffer, tid: Var, slot: Expr | None = None) -> S:
    """Thread (tid % TX, tid / TX) owns rows 4 (tid % TX) + 4 TX i + 0..3 and columns
    4 (tid / TX) + 4 TY j + 0..3: float4 shared loads, four values each (from the ring's
    `slot` where pipelined)."""
    ty = t // tx
    tm, tn = bm // tx, bn // ty
    a, b = Buffer("g_a", (tm,), "float32", "local"), Buffer("g_b", (tn,), "float32", "local")
    gv = Var("g_v", "float32x4")

    def quad(reg: Buffer, src: Buffer, kk: Var, col: Expr, i: Var) -> S:
        at = (kk, col) if slot is None else (slot, kk, col)
        return lets([(gv, FlatLoad(src, flat_offset(src.shape, at), "float32x4"))],
                    seq(*(Store(reg, (4 * i + q,), Lane(gv, q)) for q in range(4))))

    def body(kk: Var) -> S:
        fmas = unrolled("g_i", tm, lambda i: unrolled("g_j", tn, lambda j: Store(
            c, (i, j), intrin("fma", Load(a, (i,)), Load(b, (j,)), Load(c, (i, j))))))
        return local("g_a", a.shape, "float32", local("g_b", b.shape, "float32", seq(
            unrolled("g_i", tm // 4, lambda i: quad(a, As, kk, 4 * (tid % tx) + 4 * tx * i, i)),
            unrolled("g_j", tn // 4, lambda j: quad(b, Bs, kk, 4 * (tid // tx) + 4 * ty * j, j)),
            fmas)))
    return unrolled("g_kk", bk, body)


# EDGE_GUARDS_ONLY: an epilogue reads its inputs unguarded (rows and columns past the product
# at the last ones in range) and only its global stores test the bounds; a tile that divides
# the product tests nothing. Under a test around the whole epilogue, each of a
# thread's 64 outputs waited for its residual's load before the next was issued and decoded
# its row and column again (H100, b32 TF32: ResNet-50's 1x1 conv + residual + ReLU 0.265 ms
# against 0.098 without the residual; PTX of its 1x1 conv k002 2843 -> 1469 lines). On with
# the other two switches (SCALE_UNIT_AXES, WIDE_BY_DEFAULT): H100, b32 TF32, all three on
# against all off, two rounds each: ResNet-50 5.24 -> 4.95 ms, ResNet-18 1.74 -> 1.69,
# DenseNet-121 4.17 -> 3.75, GoogLeNet 2.12 -> 2.14. ResNet-18's residual conv spills 16
# bytes with WIDE_BY_DEFAULT and is faster all the same.
EDGE_GUARDS_ONLY = True


def epilogue_body(parts: GemmParts, gm: Expr, gn: Expr, value: Expr,
                  edges: tuple[bool, bool] = (True, True), clamped: bool = False) -> S:
    """Output (gm, gn)'s fused epilogue on its sum `value`, where in bounds, tested along M
    and N as `edges` say (a tile that divides the product has no partial edge): around the
    whole epilogue, or (`clamped`) around its global stores only, its loads at the last row
    and column in bounds."""
    acc = parts.acc.buffer
    tests = [t for t, edge in zip((gm < parts.m, gn < parts.n), edges) if edge]
    test = (tests[0] & tests[1] if len(tests) == 2 else tests[0]) if tests else None
    epilogue = parts.epilogue
    clamps: list[tuple[Var, Expr]] = []
    if clamped and test is not None:
        # bound to variables: the renderer reads their decodes as of non-negative values
        if edges[0]:
            clamps.append((v("g_mc"), select(gm < parts.m, gm, parts.m - 1)))
            gm = v("g_mc")
        if edges[1]:
            clamps.append((v("g_nc"), select(gn < parts.n, gn, parts.n - 1)))
            gn = v("g_nc")
        epilogue = tuple(map_stmt(e, lambda s: _guarded(s, test)) for e in epilogue)
    body = lets(clamps + decode(parts.m_axes, gm) + decode(parts.n_axes, gn),
                Allocate(acc, seq(Store(acc, (Const(0, "int64"),), value), *epilogue)))
    return body if test is None or clamped else IfThenElse(test, body)


def _guarded(s: S, test: Expr) -> S | None:
    """A global store's value computed first, then stored where `test` holds (so its loads
    issue unconditionally); None for any other statement."""
    if not isinstance(s, (Store, VectorStore)) or s.buffer.scope != "global":
        return None
    out = Var("g_out", s.value.dtype)
    store = (Store(s.buffer, s.indices, out) if isinstance(s, Store)
             else VectorStore(s.buffer, s.offset, out))
    return lets([(out, s.value)], IfThenElse(test, store))


def _epilogue(parts: GemmParts, tile: mma.Tile | None, c: Buffer, tid: Var, bm: int, bn: int,
              t: int, tx: int, partial: Buffer | None) -> S:
    """Each accumulator to its outputs, or (split-K) its partial sum to the partial buffer."""
    gm, gn = v("g_m"), v("g_n")

    def inner(value: Expr) -> S:
        if partial is not None:
            return IfThenElse((gm < parts.m) & (gn < parts.n),
                              Store(partial, (v("g_bz"), gn, gm), value))
        edges = (parts.m % bm != 0, parts.n % bn != 0) if EDGE_GUARDS_ONLY else (True, True)
        return epilogue_body(parts, gm, gn, value, edges, EDGE_GUARDS_ONLY)

    if tile is not None:
        return mma.outputs(tile, tid, gm, gn, c, inner)
    ty = t // tx
    return unrolled("g_i", bm // tx, lambda i: unrolled("g_j", bn // ty, lambda j: lets(
        [(gm, v("g_m0") + 4 * (tid % tx) + (i & 3) + 4 * tx * shr(i, 2)),
         (gn, v("g_n0") + 4 * (tid // tx) + (j & 3) + 4 * ty * shr(j, 2))],
        inner(Load(c, (i, j))))))


__all__ = ["epilogue_body", "tile_gemm"]

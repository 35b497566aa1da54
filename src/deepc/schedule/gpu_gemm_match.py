"""Recognise a GPU stage that is a (implicit) matrix product.

The shape matched (convolutions, Gemm/MatMul, 1x1 convs with fused prologues/epilogues):

    for i0..in {                       # parallel chain: one output element per iteration
      alloc acc: float32[1] local
      acc[0] = C                        # a constant
      for r0..rk { acc[0] = acc[0] + X * Y }
      out[...] = f(acc[0], ...)         # the epilogue: any stores
    }

The chain loops split in two groups: those X's indices use (the "M" axes, with the innermost
output loop, so that a block's consecutive rows are consecutive output elements) and those
only Y's use (the "N" axes). A grouped convolution's channel loop, which X reads only as
its group, splits into a group axis both use and a channel axis of N (gpu_gemm_groups.py):
one product per group. The batch loops of a batched matmul (attention's heads), which both
operands read whole, are group axes as they are. A loop both use otherwise (depthwise
convolution) is no matrix product. M = prod(M extents), N = prod(N extents),
K = prod(reduction extents), per group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from deepc.ir.expr import Binary, Const, Expr, Load, Var
from deepc.ir.loop import Allocate, For, PrimFunc, Seq, Stmt, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.schedule.gpu_chain import parallel_chain
from deepc.schedule.gpu_gemm_groups import batch_axes, split_groups
from deepc.schedule.gpu_gemm_pipeline import deepest_ring
from deepc.target.spec import Target


@dataclass(frozen=True)
class GemmParts:
    m_axes: tuple[tuple[Var, int], ...]  # outer to inner
    n_axes: tuple[tuple[Var, int], ...]
    k_axes: tuple[tuple[Var, int], ...]
    a: Expr  # the operand over (M, K)
    b: Expr  # the operand over (N, K)
    acc: Store  # acc[0] = init
    init: Const
    epilogue: tuple[Stmt, ...]
    g_axes: tuple[tuple[Var, int], ...] = ()  # groups: independent products (blockIdx.z)

    @property
    def groups(self) -> int:
        return prod(e for _, e in self.g_axes)

    @property
    def m(self) -> int:
        return prod(e for _, e in self.m_axes)

    @property
    def n(self) -> int:
        return prod(e for _, e in self.n_axes)

    @property
    def k(self) -> int:
        return prod(e for _, e in self.k_axes)


def _vars(e: Expr) -> set[Var]:
    return {x for x in walk(e) if isinstance(x, Var)}  # type: ignore[arg-type]


def _product(update: Store, acc_name: str) -> tuple[Expr, Expr] | None:
    v = update.value
    if not (isinstance(v, Binary) and v.op == "add"):
        return None
    for acc, term in ((v.a, v.b), (v.b, v.a)):
        if (isinstance(acc, Load) and acc.source.name == acc_name
                and isinstance(term, Binary) and term.op == "mul"):
            return term.a, term.b
    return None


def match_gemm(func: PrimFunc) -> GemmParts | None:
    """The stage's matrix-product parts, or None when it is not one."""
    chain = parallel_chain(func.body)
    if len(chain) < 2 or not isinstance(chain[-1].body, Allocate):
        return None
    alloc = chain[-1].body
    buf = alloc.buffer
    if buf.scope != "local" or buf.shape != (1,) or buf.dtype != "float32":
        return None
    body = list(alloc.body.stmts) if isinstance(alloc.body, Seq) else [alloc.body]
    if len(body) < 3 or not isinstance(body[0], Store) or not isinstance(body[1], For):
        return None
    init, red = body[0], body[1]
    if init.buffer.name != buf.name or not isinstance(init.value, Const):
        return None
    k_axes: list[tuple[Var, int]] = []
    s: Stmt = red
    while isinstance(s, For):
        k_axes.append((s.var, s.extent))
        s = s.body
    if not isinstance(s, Store) or s.buffer.name != buf.name:
        return None
    pair = _product(s, buf.name)
    if pair is None:
        return None
    epilogue = tuple(body[2:])
    if any(isinstance(x, For) for e in epilogue for x in walk_stmts(e)):
        return None
    kvars = {v for v, _ in k_axes}
    axes = tuple((lp.var, lp.extent) for lp in chain)
    if not all(isinstance(e, int) for _, e in axes):
        return None
    chain_vars = {var for var, _ in axes}
    x, y = pair
    if not (_vars(x) | _vars(y)) <= chain_vars | kvars:
        return None
    xv, yv = _vars(x) & chain_vars, _vars(y) & chain_vars
    g_axes: tuple[tuple[Var, int], ...] = ()
    if xv & yv:  # a grouped conv's channel loop (the input reads it as its group), or none
        split = split_groups(axes, x, y, epilogue, xv & yv)  # type: ignore[arg-type]
        if split is not None:
            axes, x, y, epilogue, g_axes = split
        elif (split := split_groups(axes, y, x, epilogue, xv & yv)  # type: ignore[arg-type]
              ) is not None:
            axes, y, x, epilogue, g_axes = split
        elif (batch := batch_axes(axes, xv & yv)) is not None:
            g_axes = batch
        else:
            return None
        chain_vars = {var for var, _ in axes}
        xv, yv = _vars(x) & chain_vars, _vars(y) & chain_vars
    groups = {var for var, _ in g_axes}
    if xv & yv - groups:
        return None
    inner = axes[-1][0]
    if inner in yv:
        x, y, xv, yv = y, x, yv, xv
    if not yv - groups:
        return None
    m_axes = tuple((var, e) for var, e in axes if var not in yv)
    n_axes = tuple((var, e) for var, e in axes if var in yv and var not in groups)
    parts = GemmParts(m_axes, n_axes, tuple(k_axes), x, y, init, init.value, epilogue,
                      g_axes)
    # a group's product may be as narrow as 4 columns (ResNeXt's first stage: 128 channels
    # in 32 groups): padded to the 8 of an mma tile it still beats one output per thread
    if parts.m < 16 or parts.n < (4 if g_axes else 8) or parts.k < 8:
        return None
    return parts


@dataclass(frozen=True)
class GemmTile:
    """A block computes bm x bn outputs over k-steps of bk, with `threads` threads; `mma`:
    TF32 tensor cores (mma.sync m16n8k8), each warp a (bm/warps_m) x (bn/warps_n) tile."""

    bm: int
    bn: int
    bk: int
    threads: int = 256
    mma: bool = False
    warps_m: int = 1
    warps_n: int = 1
    tx: int = 16  # SIMT: threads along M (threads / tx along N)
    min_blocks: int = 2  # blocks an SM should hold (caps registers per thread)
    split: int = 1  # split-K: blockIdx.z sums K chunk `kc` into a partial buffer
    kc: int = 0
    role: str = ""  # "" one launch; "partial" / "reduce": the two launches of a split-K
    scratch: str = ""  # split-K: the partial sums' buffer, float32[split][N][M]
    stages: int = 1  # 1: fetched through registers; 2-4: a cp.async ring of shared slots

    def tiles(self, parts: GemmParts) -> int:
        return tiles(parts, self.bm, self.bn)

    def grid(self, parts: GemmParts) -> tuple[int, int, int]:
        if self.role == "reduce":
            return (-(-parts.m * parts.n // self.threads), 1, 1)
        return (-(-parts.m // self.bm), -(-parts.n // self.bn), self.split * parts.groups)


def tiles(parts: GemmParts, bm: int, bn: int) -> int:
    """Output tiles of bm x bn (partial ones at the edges included)."""
    return -(-parts.m // bm) * -(-parts.n // bn)


MIN_SPLIT_K = 256  # the shortest K chunk worth a block


def split_k(tile: GemmTile, parts: GemmParts, sms: int) -> GemmTile:
    """Too few output tiles to give every SM its `min_blocks`: K in chunks over blockIdx.z,
    each at least MIN_SPLIT_K long, as many as still fit one wave of block slots; a second
    launch adds them in order. (On an H200, splitting ResNet-18's last stage at batch 32 in
    two — 200 tiles, 400 blocks for 396 slots — made it 5% slower in TF32 and 20% in fp32:
    the blocks past one wave cost a whole block's time, on top of the summing launch.)"""
    split = _wave_split(tile, parts, sms, MIN_SPLIT_K, 8)
    return chunked(tile, parts, split) if split > 1 else tile


# The shortest K chunk of a split that fills the GPU from too few tiles. TF32, swept on an
# H200 (256/128/64/32): 32 was as fast or faster on every model measured, e.g. ResNet-18 b1
# 0.30 -> 0.25 ms and ShuffleNet-V2 b32 1.04 -> 0.84 against 128 (256: ResNet-18 b1 0.70).
# The SIMT (fp32) tiles were measured at 128 only.
MIN_FILL_K, MIN_FILL_K_MMA = 128, 32


def fill_split(tile: GemmTile, parts: GemmParts, sms: int) -> GemmTile | None:
    """Fewer tiles than SMs (a small batch: ResNet-18's last stage at batch 1 is 49x512 over
    K = 4608, eight 64x64 tiles): K in as many chunks as one wave of block slots holds, each
    MIN_FILL_K long at least (MIN_FILL_K_MMA on tensor cores), so the tiles reach every SM;
    None when even that leaves SMs idle or the edge tiles are mostly waste (the
    one-output-per-thread or warp schedules win).
    On an H200, ResNet-18 at batch 1 went from 1.30 to 0.30 ms in TF32 (0.39 fp32): its
    3x3 convs had run one output per thread or a warp per output, its last stage alone
    0.15 ms a conv; at batch 32 MobileNet-V2 2.55 -> 1.96 ms and EfficientNet-B0 3.79 ->
    3.03 (TF32), whose 1568-row projections had been one output per thread."""
    split = _wave_split(tile, parts, sms, MIN_FILL_K_MMA if tile.mma else MIN_FILL_K, parts.k)
    if tile.tiles(parts) * split < sms or not _fits(parts, tile.bm, tile.bn, 0):
        return None
    return chunked(tile, parts, split)


def _wave_split(tile: GemmTile, parts: GemmParts, sms: int, min_k: int, most: int) -> int:
    """The most K chunks (up to `most`, each `min_k` long at least) whose blocks all fit one
    wave of block slots."""
    return min(sms * tile.min_blocks // tile.tiles(parts), parts.k // min_k, most)


def chunked(tile: GemmTile, parts: GemmParts, split: int) -> GemmTile:
    """`tile` over K in `split` chunks of whole k-steps (fewer when they round up)."""
    steps = -(-parts.k // tile.bk)
    kc = -(-steps // split) * tile.bk
    return replace(tile, split=-(-parts.k // kc), kc=kc, role="partial")


# SIMT tiles, largest first, with the blocks per SM each must give: on an H200 at batch 32,
# ResNet-18's third stage (6272 x 256) ran 10% faster as 392 64x64 tiles than as 196 128x64
_SIZES = ((128, 128, 1), (128, 64, 2), (64, 64, 1), (64, 128, 1), (128, 32, 1))
# TF32 tiles, largest first: (bm, bn, bk, warps along M, warps along N, blocks per SM). Four
# warps of 64x32 or 32x32 beat eight-warp 128x128 tiles on every ResNet-18 layer at batch 32
# on an H200 (swept per layer); k-steps of 32 made the 128x64 tiles 9% faster than 16. Four
# blocks per SM for the 64x64 tile let a split-K of the last stage (200 tiles) fit one wave.
# Where the small tile would be chosen, the large one split along K is preferred when the
# split fits: ResNet-18 b32, its third and last stages as 196 and 104 128x64 tiles split in
# 2 and 3 — 1.95 ms, against 2.32 ms with 64x64 tiles (2.12 with their k-steps of 32)
_MMA = ((128, 64, 32, 2, 2, 3), (64, 64, 16, 2, 2, 4))
# Products no wider than 32 columns over a long K (DenseNet's 3x3 convs: 32 channels over
# K = 1152) take tiles 32 wide: under a 64-wide tile half the mma work and the B fetches are
# padding, and too few 64-wide tiles (6272 rows at batch 32) fell to one output per thread.
# Shorter products (MobileNet-V2's projections, K <= 192) keep the 64-wide tiles measured
# for them above until the 32-wide ones are measured there too.
_MMA_NARROW = ((128, 32, 32, 2, 2, 4), (64, 32, 32, 2, 2, 4))
NARROW_TILE_N, NARROW_TILE_K = 32, 256
_MMA_WAVES = 2.5  # blocks per SM the larger tile must still give
# Products at least 128 wide with tiles for WIDE_WAVES waves may take 128x128 tiles of four
# 64x64 warp tiles (CUTLASS's TF32 shape) at 2 blocks per SM: per multiply-add, half the A
# fetches of a 128x64 tile (a 3x3 conv's guarded table-driven loads are most of a k-step's
# instructions) and a third fewer fragment loads (ptxas: 232 registers with k-steps of 16,
# no spills). On, with the epilogue and operand switches (gpu_gemm.EDGE_GUARDS_ONLY has the
# figures); alone it made ResNet-50 slower (5.24 -> 6.03 ms), with them faster (4.95).
WIDE_BY_DEFAULT = True
_MMA_WIDE = (128, 128, 16, 2, 2, 2)
WIDE_WAVES = 2.0  # blocks per SM the wide tile must give: one whole wave at 2 per SM


EDGE_WASTE = 1.35  # the outputs a tile may compute past the product's, as a multiple of it


def _fits(parts: GemmParts, bm: int, bn: int, sms: int) -> bool:
    """Every SM gets a block, and partial edge tiles waste little."""
    blocks = tiles(parts, bm, bn)
    return blocks * bm * bn <= EDGE_WASTE * parts.m * parts.n and blocks >= sms


# Edge waste a tile may carry when the product is narrower than the tile (N below bn) but
# long enough for many waves of blocks: measured by `deepc tune` on an H100 at batch 32
# (TF32), MobileNet-V2's 24- and 32-channel projections (M = 401408) ran 2.2x and 1.6x faster
# as 64x64 tiles (waste 2.7x and 2x) than one output per thread. Over a short K (the first
# conv's 27) the tile gained nothing: its loads are not reused over enough k-steps.
NARROW_WASTE, NARROW_WAVES, NARROW_K_STEPS = 2.7, 2.5, 4


def _narrow(tile: GemmTile, parts: GemmParts, sms: int) -> GemmTile | None:
    """`tile` for a product narrower than it whose tiles still fill several waves."""
    blocks = tile.tiles(parts)
    if (blocks < sms * NARROW_WAVES or parts.k < NARROW_K_STEPS * tile.bk
            or blocks * tile.bm * tile.bn > NARROW_WASTE * parts.m * parts.n):
        return None
    return tile


# The default tiles are fetched through registers (stages=1): timed on an H100 (batch 32,
# TF32, tools/gemm_knob_ab.py) the cp.async rings gave the same outputs but were 13-28%
# slower on resnet18 and 28-32% on mobilenet_v2 with these tiles. `deepc tune` offers the
# stages knob, and what it applies was measured there and checked against the default's.
RING_BY_DEFAULT = False


def choose_tile(parts: GemmParts, target: Target, tf32: bool,
                async_copy: bool = False) -> GemmTile | None:
    """The tile of _choose_tile; with `async_copy` (cp.async) and RING_BY_DEFAULT, fetched by
    ring_tile's ring of shared slots."""
    tile = _choose_tile(parts, target, tf32)
    if tile is None or not (async_copy and RING_BY_DEFAULT):
        return tile
    return ring_tile(tile, target)


def ring_tile(tile: GemmTile, target: Target) -> GemmTile:
    """`tile` fetched by the deepest ring of shared slots that keeps its blocks per SM."""
    per_sm = target.gpu.shared_mem_per_sm_kib
    if per_sm is None:
        return tile
    return replace(tile, stages=deepest_ring(tile.bm, tile.bn, tile.bk, tile.mma,
                                             tile.min_blocks, per_sm,
                                             target.shared_mem_per_block_kib))


def _choose_tile(parts: GemmParts, target: Target, tf32: bool) -> GemmTile | None:
    """The largest tile that still gives every SM a block and wastes little on edges, split
    along K where its tiles alone would not; None when even the smallest, split, leaves SMs
    idle (the one-output-per-thread schedule wins)."""
    sms = target.sm_count
    if target.max_threads_per_block < 256:
        return None
    if parts.g_axes:
        return grouped_tile(parts, sms, tf32)
    if tf32:
        if WIDE_BY_DEFAULT and (wide := _wide(parts, sms)) is not None:
            return wide
        big, small = (GemmTile(bm, bn, bk, 32 * wm * wn, True, wm, wn, min_blocks=per_sm)
                      for bm, bn, bk, wm, wn, per_sm in (
                       _MMA_NARROW if parts.n <= NARROW_TILE_N and parts.k >= NARROW_TILE_K
                       else _MMA))
        if _fits(parts, big.bm, big.bn, int(sms * _MMA_WAVES)):
            return split_k(big, parts, sms)
        if not _fits(parts, small.bm, small.bn, sms):
            return fill_split(small, parts, sms) or _narrow(small, parts, sms)
        # enough tiles for the small tile: the large one if a split-K fills the GPU with it
        split = split_k(big, parts, sms)
        if split.split > 1 and _fits(parts, big.bm, big.bn, 0):
            return split
        return split_k(small, parts, sms)
    for bm, bn, waves in _SIZES:
        if _fits(parts, bm, bn, sms * waves):
            return split_k(GemmTile(bm, bn, 8 if bm * bn >= 128 * 128 else 16, 256,
                                    tx=32 if bn == 32 else 16), parts, sms)
    simt = GemmTile(64, 64, 16, 256)
    return fill_split(simt, parts, sms) or _narrow(simt, parts, sms)


def _wide(parts: GemmParts, sms: int) -> GemmTile | None:
    """The 128x128 tile of _MMA_WIDE where the product gives every SM WIDE_WAVES blocks of
    it with little edge waste, else None."""
    bm, bn, bk, wm, wn, per_sm = _MMA_WIDE
    if not _fits(parts, bm, bn, int(sms * WIDE_WAVES)):
        return None
    return GemmTile(bm, bn, bk, 32 * wm * wn, True, wm, wn, min_blocks=per_sm)


# Tiles of a grouped conv's products by the columns they cover (the group's channels, up to
# 64; the narrowest that covers a group wastes least, bn = 8 being one mma column tile):
# TF32 (bm, warps along M, warps along N), four warps; SIMT (bm, tx, threads)
_GROUPED_MMA = {8: (128, 4, 1), 16: (128, 4, 1), 32: (128, 2, 2), 64: (128, 2, 2)}
_GROUPED_SIMT = {16: (128, 32, 128), 32: (64, 16, 128), 64: (64, 16, 256)}


def _covering(n: int, widths: list[int]) -> int:
    """The narrowest of `widths` (ascending) that covers n columns, else the widest."""
    return next((b for b in widths if b >= n), widths[-1])


def grouped_tile(parts: GemmParts, sms: int, tf32: bool) -> GemmTile:
    """A tile for each group's product (blockIdx.z over groups; no split-K: the groups
    already give many blocks), half as tall when the blocks would not reach every SM."""
    if tf32:
        bn = _covering(parts.n, sorted(_GROUPED_MMA))
        bm, wm, wn = _GROUPED_MMA[bn]
        # half as tall too where the product has no more rows than that (attention's
        # softmax x V, 64 head-dimension rows a head): a 128-row tile would be half padding
        if tiles(parts, bm, bn) * parts.groups < sms or parts.m <= bm // 2:
            bm //= 2
        return GemmTile(bm, bn, 16 if parts.k <= 64 else 32, 32 * wm * wn, True, wm, wn,
                        min_blocks=4)
    bn = _covering(parts.n, sorted(_GROUPED_SIMT))
    bm, tx, threads = _GROUPED_SIMT[bn]
    return GemmTile(bm, bn, 16, threads, tx=tx, min_blocks=2)

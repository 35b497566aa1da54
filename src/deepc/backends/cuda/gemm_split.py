"""Split-K for the tiled matrix-product kernel (gemm.py), where the output has too few tiles
to fill the GPU: blockIdx.z computes the sums over one chunk of K into a partial buffer
float32[split][N][M] (no epilogue), then a second kernel, one thread per output, adds the
chunks in order 0..split-1 (deterministic: no atomics) to the initial value and runs the
fused epilogue. M is the partial buffer's contiguous axis, as it is the output's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepc.ir.loop import PrimFunc

if TYPE_CHECKING:
    from deepc.backends.cstyle import Renderer
    from deepc.schedule.gpu_gemm_match import GemmParts, GemmTile


def split_range(parts: GemmParts, tile: GemmTile, it: str) -> list[str]:
    """g_klo, g_khi: this block's K chunk (nothing when K is not split)."""
    if tile.role != "partial":
        return []
    return [f"const {it} g_klo = (({it})blockIdx.z) * {tile.kc};",
            f"const {it} g_khi = g_klo + {tile.kc} < {parts.k} ? g_klo + {tile.kc}"
            f" : {parts.k};"]


def partial_store(parts: GemmParts, tile: GemmTile) -> str:
    """The statement storing VALUE, output (g_m, g_n)'s sum over this chunk."""
    return f"{tile.scratch}[(blockIdx.z * {parts.n} + g_n) * {parts.m} + g_m] = VALUE;"


def render_split_sum(r: Renderer, func: PrimFunc, parts: GemmParts, tile: GemmTile) -> str:
    from deepc.backends.cuda.gemm import epilogue_body

    it, m, n = r.index_type, parts.m, parts.n
    chunks = " + ".join(f"{tile.scratch}[{s * n * m} + g_i]" for s in range(tile.split))
    return "\n".join([
        f"{r.signature(func)} {{",
        f"const {it} g_i = (({it})blockIdx.x) * {tile.threads} + threadIdx.x;",
        f"if (g_i >= {m * n}) return;",
        f"const {it} g_m = g_i % {m}, g_n = g_i / {m};",
        f"const float g_sum = {r.expr(parts.init)} + ({chunks});",
        *epilogue_body(r, parts, "g_sum"),
        "}",
    ])

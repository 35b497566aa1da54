"""The summing launch of a split-K matrix product (gpu_gemm.py's tile_gemm with `partial`):
one thread per output adds the chunks' partial sums float32[split][N][M] in order 0..split-1
(deterministic: no atomics) to the initial value and runs the fused epilogue."""

from __future__ import annotations

from deepc.errors import VerifyError
from deepc.ir.expr import Expr, FlatLoad, Var
from deepc.ir.loop import IfThenElse, PrimFunc
from deepc.schedule import gpu_gemm
from deepc.schedule.gpu_build import bind, kernel, lets, v
from deepc.schedule.gpu_gemm_match import match_gemm


def split_k_sum(func: PrimFunc, partial: str, split: int, threads: int = 256) -> PrimFunc:
    """Sum a split-K's `split` partial chunks in `partial`, one output per thread.

        for i0..in { alloc acc[1]; acc[0] = C; for r.. { acc[0] += X * Y }; out.. = f(acc[0]) }
    split_k_sum("p", 2, 256) ->
        blockIdx.x for g_bx in 0..MN/256 { threadIdx.x for g_tid in 0..256 {
          let g_i = g_bx * 256 + g_tid
          if g_i < MN { let g_m = g_i % M, g_n = g_i / M, g_sum = C + (p[g_i] + p[MN + g_i])
                        let i0.. = decode(g_m, g_n); acc[0] = g_sum; out.. = f(acc[0]) } } }
    """
    parts = match_gemm(func)
    buf = next((b for b in func.params if b.name == partial), None)
    if parts is None or buf is None:
        raise VerifyError(f"{func.name}: split_k_sum needs a matrix product and its {partial}")
    m, n = parts.m, parts.n
    gi, gm, gn, total = v("g_i"), v("g_m"), v("g_n"), Var("g_sum", "float32")
    chunks: Expr = FlatLoad(buf, gi, "float32")
    for s in range(1, split):
        chunks = chunks + FlatLoad(buf, s * n * m + gi, "float32")
    body = lets([(gi, v("g_bx") * threads + v("g_tid"))], IfThenElse(gi < m * n, lets(
        [(gm, gi % m), (gn, gi // m), (total, parts.init + chunks)],
        # g_i < M N: in bounds, where EDGE_GUARDS_ONLY drops the test repeated
        gpu_gemm.epilogue_body(parts, gm, gn, total, (not gpu_gemm.EDGE_GUARDS_ONLY,) * 2))))
    grid = [("g_bx", -(-m * n // threads), "blockIdx.x"), ("g_tid", threads, "threadIdx.x")]
    return kernel(func, bind(grid, body))

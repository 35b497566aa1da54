"""CUDA C for a warp-per-output reduction (schedule/gpu_warp.py): lanes stride the
flattened reduction (neighbouring lanes read neighbouring elements), then combine with
__shfl_xor_sync; lane 0 runs the epilogue."""

from __future__ import annotations

from deepc.backends.cstyle import Renderer
from deepc.backends.cuda.gemm import _decode
from deepc.ir.loop import PrimFunc
from deepc.schedule.gpu_warp import WARPS_PER_BLOCK, WarpParts

_COMBINE = {"add": "{a} + {b}", "max": "deepc_maxf({a}, {b})", "min": "deepc_minf({a}, {b})"}


def warp_grid(parts: WarpParts) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    return (-(-parts.outputs // WARPS_PER_BLOCK), 1, 1), (32 * WARPS_PER_BLOCK, 1, 1)


def render_warp(r: Renderer, func: PrimFunc, parts: WarpParts) -> str:
    it, acc = r.index_type, parts.acc.buffer.name
    other = f"__shfl_xor_sync(0xffffffffu, {acc}[0], g_s)"
    combine = _COMBINE[parts.op].format(a=f"{acc}[0]", b=other)
    lines = [
        f"{r.signature(func)} {{",
        "const int g_lane = threadIdx.x % 32;",
        f"const {it} g_o = (({it})blockIdx.x) * {WARPS_PER_BLOCK} + threadIdx.x / 32;",
        f"if (g_o < {parts.outputs}) {{",  # whole warps leave together: shuffles stay full
        *_decode(parts.out_axes, "g_o", it),
        f"float {acc}[1]; {acc}[0] = {r.expr(parts.acc.value)};",
        f"for ({it} g_r = g_lane; g_r < {parts.length}; g_r += 32) {{",
        *_decode(parts.red_axes, "g_r", it),
        *(line.strip() for line in r.stmt(parts.update, 0)),
        "}",
        "#pragma unroll",
        f"for (int g_s = 16; g_s > 0; g_s >>= 1) {acc}[0] = {combine};",
        "if (g_lane == 0) {",
        *(line.strip() for s in parts.epilogue for line in r.stmt(s, 0)),
        "}",
        "}",
        "}",
    ]
    return "\n".join(lines)

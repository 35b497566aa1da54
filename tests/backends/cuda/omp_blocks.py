"""Runs the CUDA C that deepc emits (tiled GEMM kernels with shared memory and barriers,
warp-shuffle reductions, TF32 mma tiles) on the CPU: g++ with OpenMP, one block at a time,
its threads as OpenMP threads; __shared__ arrays are function statics (shared by the team), a
barrier is `omp barrier`, and a warp shuffle or an mma.sync goes through per-team exchange
arrays between barriers (the PTX helpers are swapped for C that follows the PTX ISA's
m16n8k8 TF32 fragment layout, cvt.rna rounding and the tensor core's truncation of
operands to TF32). A cp.async is queued by its thread and lands only when a wait_group
lets its commit group complete (so a slot read before its wait reads stale data and fails
the comparison), reading 0 bytes as zero-fill; dynamic shared memory is a static pool."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepc.backends.cuda.dialect import ASYNC_HELPERS, CUDA, MMA_HELPERS
from deepc.backends.gpu.render import render_cuda
from deepc.ir.graph import Graph
from deepc.ir.types import np_dtype
from deepc.lowering.kernels import graph_kernels
from tests.backends.cuda.simulate import drivers, execute

SHIM = r"""
#include <math.h>
#include <omp.h>
#include <string.h>
struct deepc_dim3 { int x, y, z; };
static deepc_dim3 deepc_block;
#define blockIdx deepc_block
#define threadIdx (deepc_dim3{omp_get_thread_num(), 0, 0})
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __constant__
#define __syncthreads() _Pragma("omp barrier")
struct float4 { float x, y, z, w; };
struct uint2 { unsigned x, y; };
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static float deepc_xchg[1024];
static inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  const int t = omp_get_thread_num();
  _Pragma("omp barrier")
  deepc_xchg[t] = v;
  _Pragma("omp barrier")
  return deepc_xchg[t ^ lane_mask];
}
"""

MMA_SHIM = r"""
static float deepc_tf32(float x) {  // cvt.rna.tf32.f32: round half away, keep 10 bits
  unsigned u; memcpy(&u, &x, 4); u = (u + 0x1000u) & 0xffffe000u;
  float r; memcpy(&r, &u, 4); return r; }
static unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static float deepc_u2f(unsigned u) {  // a TF32 operand: the tensor core drops 13 bits
  u &= 0xffffe000u; float r; memcpy(&r, &u, 4); return r; }
static unsigned deepc_fa[1024][4], deepc_fb[1024][2];
static void deepc_mma_tf32(float* c, const unsigned* a, const unsigned* b) {
  const int t = omp_get_thread_num(), w = t & ~31, lane = t & 31;
  _Pragma("omp barrier")
  for (int i = 0; i < 4; ++i) deepc_fa[t][i] = a[i];
  deepc_fb[t][0] = b[0]; deepc_fb[t][1] = b[1];
  _Pragma("omp barrier")
  const int g = lane / 4, tt = lane % 4;
  for (int q = 0; q < 4; ++q) {
    const int row = g + (q >> 1) * 8, col = 2 * tt + (q & 1);
    float acc = c[q];
    for (int k = 0; k < 8; ++k)  // a: lane (row % 8, k % 4), reg row / 8 + 2 (k / 4)
      acc += deepc_u2f(deepc_fa[w + (row % 8) * 4 + k % 4][row / 8 + 2 * (k / 4)])
           * deepc_u2f(deepc_fb[w + col * 4 + k % 4][k / 4]);  // b: lane (n, k % 4), reg k / 4
    c[q] = acc;
  }
  _Pragma("omp barrier")
}
"""


ASYNC_SHIM = r"""
#include <vector>
struct deepc_copy { float* dst; const float* src; int floats, bytes, group; };
static std::vector<deepc_copy> deepc_copies[1024];
static int deepc_committed[1024];
static void deepc_cp_async(float* dst, const float* src, int floats, int bytes) {
  const int t = omp_get_thread_num();
  deepc_copies[t].push_back({dst, src, floats, bytes, deepc_committed[t]}); }
static void deepc_cp_async4(float* dst, const float* src, int bytes) {
  deepc_cp_async(dst, src, 1, bytes); }
static void deepc_cp_async16(float* dst, const float* src, int bytes) {
  deepc_cp_async(dst, src, 4, bytes); }
static void deepc_cp_async_commit() { ++deepc_committed[omp_get_thread_num()]; }
template <int N> static void deepc_cp_async_wait() {  // groups older than the N newest land
  const int t = omp_get_thread_num();
  std::vector<deepc_copy> pending;
  for (const deepc_copy& c : deepc_copies[t]) {
    if (c.group >= deepc_committed[t] - N) { pending.push_back(c); continue; }
    for (int i = 0; i < c.floats; ++i) c.dst[i] = 4 * i < c.bytes ? c.src[i] : 0.0f;
  }
  deepc_copies[t] = pending; }
"""
DYNAMIC_POOL = "static __attribute__((aligned(16))) unsigned char deepc_smem[1 << 18];"


def run_blocks(graph: Graph, target: object, feeds: dict[str, np.ndarray], tmp: Path,
               allow_tf32: bool = False, dialect: Any = None,
               knobs: dict[str, dict[str, Any]] | None = None
               ) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Each node its own kernel, rendered as CUDA C (or `dialect`, a variant of it) for
    `target` (with `knobs` by kernel name: tuning knobs), run on the CPU."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: CUDA C is run on the CPU through g++ -fopenmp")
    kernels = graph_kernels(graph)
    source, launches, scratch, records = render_cuda(kernels, target, dialect,
                                                     allow_tf32=allow_tf32, knobs=knobs)
    lib = build_blocks(source, kernels, (launches, scratch), tmp, allow_tf32)
    outs = execute(lib, graph, kernels, (launches, scratch), feeds, np.nan)
    return outs, records


def build_blocks(source: str, kernels: list, plan: tuple[dict, dict], tmp: Path,
                 allow_tf32: bool = False) -> ctypes.CDLL:
    """The CUDA C `source` of `kernels` built for the CPU, with a `run_<launch>` driver per
    launch that runs its blocks one after another."""
    if allow_tf32:
        source = source.replace(MMA_HELPERS, MMA_SHIM)
    source = source.replace(ASYNC_HELPERS, ASYNC_SHIM)
    source = source.replace(CUDA.dynamic_shared, DYNAMIC_POOL)
    assert "asm" not in source, "inline PTX cannot run on the CPU"
    source = source.replace("#include <cuda_fp16.h>", SHIM)

    def body(launch: Any, args: str) -> str:  # void* -> T*: -fpermissive
        gx, gy, gz = launch.grid
        return (f"  omp_set_dynamic(0);\n"
                f"  for (int bz = 0; bz < {gz}; ++bz)\n"
                f"  for (int by = 0; by < {gy}; ++by) for (int bx = 0; bx < {gx}; ++bx) {{\n"
                f"    deepc_block = deepc_dim3{{bx, by, bz}};\n"
                f"    _Pragma(\"omp parallel num_threads({launch.block[0]})\")\n"
                f"    {launch.func}({args});\n"
                f"  }}\n")

    src = tmp / "blocks.cpp"
    src.write_text(source + drivers(kernels, plan, 'extern "C" ', body))
    lib = tmp / "blocks.so"
    done = subprocess.run(["g++", "-O1", "-fopenmp", "-shared", "-fPIC", "-w", "-fpermissive",
                           "-o", str(lib), str(src)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return ctypes.CDLL(str(lib))


def run_device_plan(compiled: Any, feeds: dict[str, np.ndarray],
                    tmp: Path) -> dict[str, np.ndarray]:
    """A CUDA model as its bundle runs it, on the CPU: one byte arena laid out by the device
    plan (params, workspace, scratch, inputs, outputs; the rest NaN-poisoned), every launch
    called in plan order with the arena's base plus its argument offsets."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: CUDA C is run on the CPU through g++ -fopenmp")
    from deepc.compiler.packagers.arena import device_plan

    module, graph = compiled.module, compiled.graph
    lib = build_blocks(module.source, compiled.kernels, (module.launches, module.scratch), tmp,
                       bool(module.settings.get("allow_tf32")))
    plan = device_plan(compiled)
    arena = np.full(plan["arena_bytes"] // 4 + 1, np.nan, np.float32).view(np.uint8)
    params = np.frombuffer(compiled.params(), np.uint8)
    arena[plan["params_offset"]:plan["params_offset"] + params.size] = params
    for off, name in zip(plan["inputs"], graph.inputs):
        data = np.ascontiguousarray(feeds[name]).view(np.uint8).ravel()
        arena[off:off + data.size] = data
    base = arena.ctypes.data
    for launch in plan["launches"]:
        getattr(lib, f"run_{launch['func']}")(*[ctypes.c_void_p(base + a) for a in launch["args"]])
    outs = {}
    for off, name in zip(plan["outputs"], graph.outputs):
        t = graph.types[name]
        outs[name] = arena[off:off + t.nbytes].view(np_dtype(t.dtype)).reshape(t.shape).copy()
    return outs

"""Runs the CUDA C that deepc emits (tiled GEMM kernels with shared memory and barriers,
warp-shuffle reductions) on the CPU: g++ with OpenMP, one block at a time, its threads as
OpenMP threads; __shared__ arrays are function statics (shared by the team), a barrier is
`omp barrier`, and a warp shuffle goes through a per-team exchange array between barriers.
TF32 mma kernels (inline PTX) cannot run here."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepc.compiler.cuda import render_cuda
from deepc.compiler.kernels import graph_kernels
from deepc.ir.graph import Graph
from deepc.ir.types import np_dtype

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
#define __syncthreads() _Pragma("omp barrier")
struct float4 { float x, y, z, w; };
static float deepc_xchg[1024];
static inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  const int t = omp_get_thread_num();
  _Pragma("omp barrier")
  deepc_xchg[t] = v;
  _Pragma("omp barrier")
  return deepc_xchg[t ^ lane_mask];
}
"""


def run_blocks(graph: Graph, target: object, feeds: dict[str, np.ndarray],
               tmp: Path) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Each node its own kernel, rendered as CUDA C for `target`, run on the CPU."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: CUDA C is run on the CPU through g++ -fopenmp")
    kernels = graph_kernels(graph)
    source, launches, scratch, records = render_cuda(kernels, target)
    assert "mma.sync" not in source, "TF32 mma kernels cannot run on the CPU"
    source = source.replace("#include <cuda_fp16.h>", SHIM)
    drivers = []
    for k in kernels:
        for launch in launches[k.name]:
            n = len(k.args) + len(scratch[k.name])
            params = ", ".join(f"void* a{i}" for i in range(n))
            args = ", ".join(f"a{i}" for i in range(n))  # void* -> T*: -fpermissive
            gx, gy, _ = launch.grid
            drivers.append(
                f'extern "C" void run_{launch.func}({params}) {{\n'
                f"  omp_set_dynamic(0);\n"
                f"  for (int by = 0; by < {gy}; ++by) for (int bx = 0; bx < {gx}; ++bx) {{\n"
                f"    deepc_block = deepc_dim3{{bx, by, 0}};\n"
                f"    _Pragma(\"omp parallel num_threads({launch.block[0]})\")\n"
                f"    {launch.func}({args});\n"
                f"  }}\n}}")
    src = tmp / "blocks.cpp"
    src.write_text(source + "\n".join(drivers) + "\n")
    lib = tmp / "blocks.so"
    done = subprocess.run(["g++", "-O1", "-fopenmp", "-shared", "-fPIC", "-w", "-fpermissive",
                           "-o", str(lib), str(src)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    so = ctypes.CDLL(str(lib))
    values = {**{n: np.ascontiguousarray(v) for n, v in graph.constants.items()}, **feeds}
    for k in kernels:
        for o in k.outputs:
            t = graph.types[o]
            values[o] = np.full(t.shape, np.nan, np_dtype(t.dtype))  # poisoned
        temps = [np.zeros(b.shape, np_dtype(b.dtype)) for b in scratch[k.name]]
        ptrs = [values[a].ctypes.data_as(ctypes.c_void_p) for a in k.args]
        ptrs += [t.ctypes.data_as(ctypes.c_void_p) for t in temps]
        for launch in launches[k.name]:
            getattr(so, f"run_{launch.func}")(*ptrs)
    return {o: values[o] for o in graph.outputs}, records

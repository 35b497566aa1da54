"""Runs a Metal bundle's kernels on the CPU: its MSL compiled as C++ by g++ against a shim
(Metal's vector types as structs, address spaces defined away), each threadgroup's threads as
fibers (ucontext) on one OS thread: threadgroup arrays become function statics (shared by the
fibers) and a threadgroup barrier switches to the next fiber, round robin, so every thread
reaches it before any passes it. (OpenMP teams of 256 threads on 2 cores took minutes.) The
launches are the bundle's own device plan over one arena, bound at its offsets as the
Objective-C host program binds them."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepc.ir.types import np_dtype

SHIM = r"""
#include <math.h>
#include <stdlib.h>
#include <ucontext.h>
#define kernel extern "C"
#define device
#define thread
#define threadgroup
#define constant  // deepc writes `constant const`: the address space, then const
#define buffer(n) gnu::unused
#define threadgroup_position_in_grid gnu::unused
#define thread_position_in_threadgroup gnu::unused
namespace metal {
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
struct float2 { float x, y; float2() = default;
  float2(float a, float b) : x(a), y(b) {} };
struct float4 { float x, y, z, w; float4() = default;
  float4(float a, float b, float c, float d) : x(a), y(b), z(c), w(d) {} };
struct uint3 { unsigned x, y, z; };
enum class mem_flags { mem_none, mem_device, mem_threadgroup };
}  // namespace metal
enum { DEEPC_STACK = 1 << 16, DEEPC_MAX = 1024 };
static ucontext_t deepc_main, deepc_fiber[DEEPC_MAX];
static unsigned deepc_n, deepc_cur, deepc_tx, deepc_ty;
static metal::uint3 deepc_block;
static char* deepc_stacks;
namespace metal {
static inline void threadgroup_barrier(mem_flags) {
  const unsigned me = deepc_cur;
  deepc_cur = (me + 1) % deepc_n;
  swapcontext(&deepc_fiber[me], &deepc_fiber[deepc_cur]);
}
}  // namespace metal
static metal::uint3 deepc_tid() {
  const unsigned t = deepc_cur;
  return metal::uint3{t % deepc_tx, t / deepc_tx % deepc_ty, t / (deepc_tx * deepc_ty)};
}
"""


def _driver(func: str, nargs: int) -> str:
    args = ", ".join([*(f"(void*)(deepc_arena_{func} + deepc_offs_{func}[{k}])"
                        for k in range(nargs)), "deepc_block", "deepc_tid()"])
    return (f"static char* deepc_arena_{func};\n"
            f"static const unsigned long* deepc_offs_{func};\n"
            f"static void deepc_item_{func}() {{ {func}({args}); }}\n"
            f'extern "C" void run_{func}(char* arena, const unsigned long* offs,'
            " unsigned gx, unsigned gy, unsigned gz, unsigned tx, unsigned ty, unsigned tz) {\n"
            f"  deepc_arena_{func} = arena; deepc_offs_{func} = offs;\n"
            "  if (!deepc_stacks) deepc_stacks = (char*)malloc((size_t)DEEPC_STACK * DEEPC_MAX);\n"
            "  deepc_n = tx * ty * tz; deepc_tx = tx; deepc_ty = ty;\n"
            "  for (unsigned bz = 0; bz < gz; ++bz) for (unsigned by = 0; by < gy; ++by)\n"
            "  for (unsigned bx = 0; bx < gx; ++bx) {\n"
            "    deepc_block = metal::uint3{bx, by, bz};\n"
            "    for (unsigned t = 0; t < deepc_n; ++t) {\n"
            "      getcontext(&deepc_fiber[t]);\n"
            "      deepc_fiber[t].uc_stack.ss_sp = deepc_stacks + (size_t)t * DEEPC_STACK;\n"
            "      deepc_fiber[t].uc_stack.ss_size = DEEPC_STACK;\n"
            "      deepc_fiber[t].uc_link = &deepc_main;\n"
            f"      makecontext(&deepc_fiber[t], deepc_item_{func}, 0);\n"
            "    }\n"
            "    // a fiber that returns comes back here; the next one resumes where it waits\n"
            "    for (unsigned t = 0; t < deepc_n; ++t) {\n"
            "      deepc_cur = t;\n"
            "      swapcontext(&deepc_main, &deepc_fiber[t]);\n"
            "    }\n  }\n}\n")


def run_bundle(bundle: Path, feeds: dict[str, np.ndarray], tmp: Path) -> list[np.ndarray]:
    """The bundle's outputs for `feeds` (by input name), in the manifest's order."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not found: the MSL is run on the CPU through g++")
    import json

    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        source = tar.extractfile("lib/kernels.metal").read().decode()  # type: ignore[union-attr]
        params = np.frombuffer(tar.extractfile("params.bin").read(), np.uint8)  # type: ignore[union-attr]
    plan = manifest["device_plan"]
    source = source.replace("#include <metal_stdlib>", SHIM)
    # threadgroup arrays: one per threadgroup, so function statics (first in each kernel)
    source = re.sub(r"^  threadgroup ", "  static ", source, flags=re.M)
    funcs = {x["func"]: len(x["args"]) for x in plan["launches"]}
    src = tmp / "threadgroups.cpp"
    src.write_text(source + "".join(_driver(f, n) for f, n in funcs.items()))
    lib = tmp / "threadgroups.so"
    done = subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-w", "-fpermissive",
                           "-o", str(lib), str(src)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    so = ctypes.CDLL(str(lib))
    arena = np.zeros(int(plan["arena_bytes"]) + 256, np.uint8)
    shift = (-arena.ctypes.data) % 256  # the arena's start aligned as a device buffer's
    arena = arena[shift:shift + int(plan["arena_bytes"])]
    arena[plan["params_offset"]:plan["params_offset"] + params.size] = params
    for spec, offset in zip(manifest["inputs"], plan["inputs"]):
        data = np.ascontiguousarray(feeds[spec["name"]], np_dtype(spec["dtype"])).view(np.uint8)
        arena[offset:offset + data.size] = data.reshape(-1)
    base = ctypes.c_char_p(arena.ctypes.data)
    for launch in plan["launches"]:
        offs = (ctypes.c_ulong * max(len(launch["args"]), 1))(*launch["args"])
        getattr(so, f"run_{launch['func']}")(base, offs, *map(ctypes.c_uint, launch["grid"]),
                                             *map(ctypes.c_uint, launch["block"]))
    outs: list[Any] = []
    for spec, offset in zip(manifest["outputs"], plan["outputs"]):
        dtype = np_dtype(spec["dtype"])
        n = int(np.prod(spec["shape"])) * dtype.itemsize
        outs.append(arena[offset:offset + n].view(dtype).reshape(spec["shape"]).copy())
    return outs

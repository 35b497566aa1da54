"""The OpenCL C dialect of the C-style renderer: work-groups for blocks, work-items for
threads, __local for shared memory, buffers as byte offsets into one arena. No tensor-core
intrinsics, and no shuffles (OpenCL 2.0 core has no sub-group functions), so only the SIMT
tiled kernels are rendered in it."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect

OPENCL = Dialect(
    name="opencl",
    kernel_qualifier="__kernel",
    helper_qualifier="static inline",
    global_qualifier="__global",
    restrict="restrict",
    thread_index={f"{k}.{a}": f"{fn}({i})" for k, fn in (("blockIdx", "get_group_id"),
                                                           ("threadIdx", "get_local_id"))
                  for i, a in enumerate("xyz")},
    barrier="barrier(CLK_LOCAL_MEM_FENCE)",
    shared_qualifier="__local",
    types={"int64": "long", "uint64": "ulong", "int8": "char", "uint8": "uchar",
           "uint16": "ushort", "uint32": "uint"},
    overloaded_math=True,
    intrinsics={"fma": "fma({0}, {1}, {2})"},
    vector_load="vload{lanes}(0, {addr})",
    vector_store="vstore{lanes}({value}, 0, {addr})",
    pack="({type})({lanes})",
    launch_bounds="__attribute__((reqd_work_group_size({threads}, 1, 1)))",
    # program-scope tables must be __constant in OpenCL C; the device guarantees 64 KiB
    constant_qualifier="__constant",
    table_qualifier="__constant",
    constant_bytes=64 * 1024,
    arena_param="__global uchar* deepc_arena",
    arena_offset=("__global {type}*{restrict} {name} ="
                  " (__global {type}*)(deepc_arena + {name}_off);"),
)

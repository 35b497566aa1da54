"""The Metal Shading Language dialect of the C-style renderer: threadgroups for blocks,
threadgroup memory for shared, each buffer a [[buffer(n)]] parameter that the host binds at
its offset into one arena. Like OpenCL: no tensor-core intrinsics and no shuffles, so the
SIMT tiled kernels. MSL has no double (float64 is spelt float: Apple GPUs have none) and no
erf (a helper below)."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect

PRELUDE = r"""#include <metal_stdlib>
using namespace metal;
// erf to 1.5e-7 (Abramowitz and Stegun 7.1.26): MSL has none
static inline float deepc_erf(float x) {
  const float t = 1.0f / (1.0f + 0.3275911f * fabs(x));
  const float y = 1.0f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t
                           - 0.284496736f) * t + 0.254829592f) * t * exp(-x * x);
  return copysign(y, x); }"""

METAL = Dialect(
    name="metal",
    prelude=PRELUDE,
    kernel_qualifier="kernel",
    helper_qualifier="static inline",
    global_qualifier="device",
    restrict="",
    thread_index={f"{k}.{a}": f"{v}.{a}" for k, v in (("blockIdx", "deepc_group"),
                                                       ("threadIdx", "deepc_thread"))
                  for a in "xyz"},
    builtin_params=("uint3 deepc_group [[threadgroup_position_in_grid]],"
                    " uint3 deepc_thread [[thread_position_in_threadgroup]]"),
    param_attr=" [[buffer({index})]]",
    barrier="threadgroup_barrier(mem_flags::mem_threadgroup)",
    shared_qualifier="threadgroup",
    types={"int64": "long", "uint64": "ulong", "int8": "char", "uint8": "uchar",
           "uint16": "ushort", "uint32": "uint", "float64": "float"},
    math={"erf": "deepc_erf"},
    overloaded_math=True,
    intrinsics={"fma": "fma({0}, {1}, {2})"},
    spaces={"global": "device", "shared": "threadgroup", "local": "thread"},
    vector_load="*(({space} const {type}*)({addr}))",
    vector_store="*(({space} {type}*)({addr})) = {value}",
    pack="{type}({lanes})",
    constant_qualifier="constant",
    table_qualifier="constant",
    constant_bytes=64 * 1024,
)

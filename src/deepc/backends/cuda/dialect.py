"""The CUDA C dialect of the C-style renderer."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect

# the TF32 rounding and the m16n8k8 tensor-core step as inline PTX
MMA_HELPERS = r"""
// half a TF32 ulp added to the bits: the tensor core, which ignores an operand's low 13 bits,
// then sees x rounded as cvt.rna.tf32.f32 would (an integer add instead of a conversion)
static __device__ __forceinline__ float deepc_tf32(float x) {
  return __uint_as_float(__float_as_uint(x) + 0x1000u); }
static __device__ __forceinline__ void deepc_mma_tf32(float* c, const unsigned* a,
                                                      const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
               "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
"""

# cp.async (sm_80+): a copy global -> shared that bypasses registers, `bytes` of its 4 or 16
# read (0: the destination is zero-filled), in groups a thread commits and waits on
ASYNC_HELPERS = r"""
static __device__ __forceinline__ void deepc_cp_async4(float* dst, const float* src,
                                                       int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n"
               :: "r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(bytes)); }
static __device__ __forceinline__ void deepc_cp_async16(float* dst, const float* src,
                                                        int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :: "r"((unsigned)__cvta_generic_to_shared(dst)), "l"(src), "r"(bytes)); }
static __device__ __forceinline__ void deepc_cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::); }
template <int N> static __device__ __forceinline__ void deepc_cp_async_wait() {
  // "memory": the compiler moves no shared-memory load above the wait
  asm volatile("cp.async.wait_group %0;\n" :: "n"(N) : "memory"); }
"""

CUDA = Dialect(
    name="cuda",
    prelude="#include <cuda_fp16.h>\n#include <math.h>",
    kernel_qualifier='extern "C" __global__',
    helper_qualifier="static __device__ __forceinline__",
    restrict="__restrict__",
    thread_index={f"{k}.{a}": f"{k}.{a}" for k in ("blockIdx", "threadIdx") for a in "xyz"},
    barrier="__syncthreads()",
    shared_qualifier="__shared__",
    # past the static limit, a kernel's shared arrays are carved from the launch's dynamic
    # shared memory (the runtime raises the function's limit before launching it)
    dynamic_shared="extern __shared__ __align__(16) unsigned char deepc_smem[];",
    shared_view="{type}* {name} = reinterpret_cast<{type}*>(deepc_smem + {offset});",
    math={"rsqrt": "rsqrtf"},
    intrinsics={"fma": "fmaf({0}, {1}, {2})", "tf32_round": "deepc_tf32({0})",
                "shfl_xor": "__shfl_xor_sync(0xffffffffu, {0}, {1})",
                "mma_m16n8k8_tf32": "deepc_mma_tf32({0}, {1}, {2})",
                "cp_async4": "deepc_cp_async4({0}, {1}, {2})",
                "cp_async16": "deepc_cp_async16({0}, {1}, {2})",
                "cp_async_commit": "deepc_cp_async_commit()",
                "cp_async_wait": "deepc_cp_async_wait<{0}>()"},
    helpers={"tf32_round": MMA_HELPERS, "mma_m16n8k8_tf32": MMA_HELPERS,
             **dict.fromkeys(("cp_async4", "cp_async16", "cp_async_commit", "cp_async_wait"),
                             ASYNC_HELPERS)},
    vector_load="*reinterpret_cast<const {type}*>({addr})",
    vector_store="*reinterpret_cast<{type}*>({addr}) = {value}",
    pack="make_{type}({lanes})",
    launch_bounds="__launch_bounds__({threads}, {blocks})",
    constant_qualifier="__constant__",
    table_qualifier="__device__",
    constant_bytes=56 * 1024,  # of the 64 KiB bank, the rest left for the compiler's own
)

# plain C (C99): the same renderer checked on the CPU with gcc; GPU axes are not available
C = Dialect(name="c", prelude="#include <math.h>\n#include <stdbool.h>",
            types={"float16": "_Float16"})

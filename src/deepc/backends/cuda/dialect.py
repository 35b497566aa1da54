"""The CUDA C dialect of the C-style renderer."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect

CUDA = Dialect(
    name="cuda",
    prelude="#include <cuda_fp16.h>\n#include <math.h>",
    kernel_qualifier='extern "C" __global__',
    helper_qualifier="static __device__ __forceinline__",
    restrict="__restrict__",
    thread_index={f"{k}.{a}": f"{k}.{a}" for k in ("blockIdx", "threadIdx") for a in "xyz"},
    barrier="__syncthreads()",
    shared_qualifier="__shared__",
    math={"rsqrt": "rsqrtf"},
)

# plain C (C99): the same renderer checked on the CPU with gcc; GPU axes are not available
C = Dialect(name="c", prelude="#include <math.h>\n#include <stdbool.h>",
            types={"float16": "_Float16"})

"""The tiled matrix-product kernel's K loop with cp.async (sm_80+) double buffering.

Two shared stages per operand: while the block computes on one, the copy engine fills the
other straight from global memory (`cp.async.ca.shared.global`, 4 bytes an element; an
element outside the matrix or in a convolution's padding is zero-filled through a source
size of 0, so nothing out of bounds is read). Each step commits one group and waits for all
but the newest, so the step's own stage is complete; TF32 rounding (cvt.rna) moves from the
shared stores to the fragment loads. The helpers are guarded so each file defines them once.
"""

from __future__ import annotations

ASYNC_HELPERS = r"""#ifndef DEEPC_CP_ASYNC
#define DEEPC_CP_ASYNC
static __device__ __forceinline__ void deepc_cp_async4(float* dst, const float* src, bool p) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n"
               :: "r"(s), "l"(src), "r"(p ? 4 : 0));
}
static __device__ __forceinline__ void deepc_cp_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
static __device__ __forceinline__ void deepc_cp_wait1() {
  asm volatile("cp.async.wait_group 1;\n" ::);
}
#endif"""


def async_loop(*, it: str, m: int, n: int, klo: str, k: str, bm: int, bn: int, bk: int, t: int,
               a_buf: str, a_fetch: str, b_buf: str, b_src: str, step: list[str]) -> list[str]:
    """The K loop over [klo, k). `a_fetch`: statements run for an A element inside the
    matrix (given g_k) that point g_src at it or clear g_p (padding); `b_src`: a B
    element's address (given g_k, g_e); `step` computes on stage g_s."""
    a_per, b_per = bk * bm // t, bk * bn // t

    def issue(k0: str, stage: str) -> list[str]:
        return [
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {a_per}; ++g_e) {{",
            f"  const {it} g_k = {k0} + g_tid / {bm} + g_e * {t // bm};",
            f"  bool g_p = g_am < {m} && g_k < {k}; const float* g_src = {a_buf};",
            f"  if (g_p) {{ {a_fetch} }}",
            f"  deepc_cp_async4(&g_As[{stage}][g_tid / {bm} + g_e * {t // bm}][g_tid % {bm}],"
            " g_src, g_p); }",
            "#pragma unroll",
            f"for (int g_e = 0; g_e < {b_per}; ++g_e) {{",
            f"  const {it} g_n = g_n0 + g_tid / {bk} + g_e * {t // bk};",
            f"  const {it} g_k = {k0} + g_tid % {bk};",
            f"  const bool g_p = g_n < {n} && g_k < {k};",
            f"  deepc_cp_async4(&g_Bs[{stage}][g_tid % {bk}][g_tid / {bk} + g_e * {t // bk}],"
            f" g_p ? &{b_src} : {b_buf}, g_p); }}",
        ]

    return [
        *issue(klo, "0"),
        "deepc_cp_commit();",
        "int g_s = 0;",
        f"for ({it} g_k0 = {klo}; g_k0 < {k}; g_k0 += {bk}, g_s ^= 1) {{",
        f"if (g_k0 + {bk} < {k}) {{",
        *issue(f"g_k0 + {bk}", "g_s ^ 1"),
        "}",
        "deepc_cp_commit();",
        "deepc_cp_wait1();",
        "__syncthreads();",
        *step,
        "__syncthreads();",
        "}",
    ]

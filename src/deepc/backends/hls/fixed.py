"""Calibrated ranges to fixed16 kernels: each tensor's ap_fixed<16,N> format, and the C-style
renderer that computes in those formats (a tensor's values are rounded to its format where
they are loaded and stored, sums and other arithmetic run in one 48-bit ap_fixed).

DDR keeps float32 words, so the arena, params.bin, the testbench and the host program are the
float32 bundle's; every value a kernel stores is rounded to its tensor's format first, so what
DDR holds is exactly what a 16-bit design would (float32 holds any 16-bit fixed value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from deepc.backends.cstyle import Renderer
from deepc.ir.expr import Call, Cast, Const, Expr, Load, Select
from deepc.ir.loop import Allocate, Buffer, PrimFunc, Stmt, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.lowering.plan import Plan

WIDTH, ACC_WIDTH = 16, 48  # a DSP48E2 multiplies 27x18 bits and accumulates 48
GUARD_BITS = 1  # beyond the calibrated range: inputs it never saw may be larger
ACC_GUARD_BITS = 8  # partial sums can exceed the largest tensor before they cancel


def integer_bits(largest: float) -> int:
    """N of ap_fixed<16,N> for values up to `largest` in magnitude: the bits of its integer
    part (negative for values below 1/2: more fraction bits), a sign bit and a guard bit."""
    if largest <= 0 or not math.isfinite(largest):
        return 1 + GUARD_BITS
    return math.floor(math.log2(largest)) + 1 + 1 + GUARD_BITS


def kernel_formats(plan: Plan, ranges: Mapping[str, float],
                   scratch: Mapping[str, tuple[Buffer, ...]]) -> dict[str, dict[str, int]]:
    """kernel -> its buffers' integer bits: a parameter's from the value it is called with; a
    scratch buffer (a padded copy of an input) takes the widest format it is stored from."""
    out: dict[str, dict[str, int]] = {}
    for k in plan.calls:
        formats = out.setdefault(k.name, {})
        for value, buf in zip(k.args, k.func.params):
            n = integer_bits(ranges.get(value, 0.0))
            formats[buf.name] = max(n, formats.get(buf.name, n))
        for buf in scratch.get(k.name, ()):
            sources = [formats[e.source.name] for s in walk_stmts(k.func.body)
                       if isinstance(s, Store) and s.buffer.name == buf.name
                       for e in walk(s.value)
                       if isinstance(e, Load) and e.source.name in formats]
            formats[buf.name] = max(sources or formats.values())
    return out


def acc_integer_bits(formats: Mapping[str, Mapping[str, int]]) -> int:
    return max((n for f in formats.values() for n in f.values()), default=1) + ACC_GUARD_BITS


def fixed_prelude(acc_bits: int) -> str:
    return "\n".join([
        f"// fixed16: a tensor's values in deepc_fx<N> (N integer bits of {WIDTH}, sign"
        " included), arithmetic in deepc_acc_t",
        f"template <int N> using deepc_fx = ap_fixed<{WIDTH}, N, AP_RND_CONV, AP_SAT>;",
        "// a float to deepc_fx<N> as ap_fixed's own constructor rounds it (half to even, then",
        "// saturated), through float arithmetic: 4x faster in C simulation",
        "template <int N> static inline deepc_fx<N> deepc_to_fx(float x) {",
        f"  float r = nearbyintf(ldexpf(x, {WIDTH} - N));",
        f"  r = r < {-2.0 ** (WIDTH - 1)!r}f ? {-2.0 ** (WIDTH - 1)!r}f :"
        f" r > {2.0 ** (WIDTH - 1) - 1!r}f ? {2.0 ** (WIDTH - 1) - 1!r}f : r;",
        "  deepc_fx<N> v; v.range() = (int)r; return v; }",
        f"typedef ap_fixed<{ACC_WIDTH}, {acc_bits}> deepc_acc_t;",
        f"#define DEEPC_ACC_INF deepc_acc_t(ap_fixed<{ACC_WIDTH}, {acc_bits}, AP_TRN, AP_SAT>"
        "(1e300))",
        "template <class A, class B> static inline deepc_acc_t deepc_maxf(A a, B b) {",
        "  deepc_acc_t x(a), y(b); return x > y ? x : y; }",
        "template <class A, class B> static inline deepc_acc_t deepc_minf(A a, B b) {",
        "  deepc_acc_t x(a), y(b); return x < y ? x : y; }"])


class FixedRenderer(Renderer):
    """The HLS renderer over fixed-point values: `formats` (set per kernel) gives each global
    float buffer's integer bits; on-chip tiles of a parameter take its format, other local
    arrays and scalars the accumulator type."""

    formats: dict[str, int] = {}

    def fixed(self, f: PrimFunc, extra: tuple[Buffer, ...], formats: dict[str, int]) -> str:
        self.formats = formats
        # a parameter's copy on chip; a tile of running sums (it reads itself) is wide
        sums = {s.buffer.name for s in walk_stmts(f.body) if isinstance(s, Store)
                and any(isinstance(e, Load) and e.source == s.buffer for e in walk(s.value))}
        self._tiles = {s.buffer.name: formats[e.source.name] for s in walk_stmts(f.body)
                       if isinstance(s, Store) and s.buffer.scope == "bram"
                       and s.buffer.name not in sums for e in walk(s.value)
                       if isinstance(e, Load) and e.source.name in formats}
        return self.function(f, extra)

    def _fx(self, buf: Buffer) -> int | None:
        if buf.dtype != "float32":
            return None
        return self.formats.get(buf.name) if buf.scope == "global" else None

    def vtype(self, dtype: str) -> str:
        return "deepc_acc_t" if dtype == "float32" else super().vtype(dtype)

    def expr(self, e: Expr) -> str:
        if isinstance(e, Load) and (n := self._fx(e.source)) is not None:
            return f"deepc_to_fx<{n}>({super().expr(e)})"
        if isinstance(e, Const) and e.dtype == "float32":
            if math.isinf(float(e.value)):
                return "DEEPC_ACC_INF" if float(e.value) > 0 else "(-DEEPC_ACC_INF)"
            if float(e.value).is_integer() and abs(float(e.value)) < 2**31:
                return f"deepc_acc_t({int(e.value)})"  # exact, and cheaper than from a float
            return f"deepc_acc_t({super().expr(e)})"
        if isinstance(e, Select) and e.dtype == "float32":
            # two ap_fixed types convert to each other: C++ needs one type for both arms
            return (f"({self.expr(e.cond)} ? deepc_acc_t({self.expr(e.t)}) :"
                    f" deepc_acc_t({self.expr(e.f)}))")
        if isinstance(e, Cast) and e.to == "float32":
            return f"deepc_acc_t({self.expr(e.x)})"
        if isinstance(e, Call) and e.dtype == "float32":  # math functions in float (a core)
            args = ", ".join(f"(float)({self.expr(a)})" for a in e.args)
            return f"deepc_acc_t({self.math(e.func, 'float32')}({args}))"
        return super().expr(e)

    def stmt(self, s: Stmt, indent: int) -> list[str]:
        if isinstance(s, Store) and (n := self._fx(s.buffer)) is not None:
            return [f"{'  ' * indent}{s.buffer.name}[{self.offset(s.buffer, s.indices)}] ="
                    f" deepc_fx<{n}>({self.expr(s.value)}).to_float();"]
        if isinstance(s, Allocate) and s.data is None and s.buffer.dtype == "float32" \
                and s.buffer.scope != "global":
            lines = super().stmt(s, indent)
            ctype = (f"deepc_fx<{self._tiles[s.buffer.name]}>" if s.buffer.name in self._tiles
                     else "deepc_acc_t")
            lines[0] = lines[0].replace("float ", f"{ctype} ", 1)
            return lines
        return super().stmt(s, indent)

"""Vectorizable float32 math: exp, tanh and erf as inline polynomials instead of libm calls.

LLVM turns `llvm.exp` on a vector into one libm call per lane; these expansions stay in
vector registers. exp uses a Cephes-style degree-6 polynomial after range reduction by
ln 2 (about 1 ulp), with the overflow, underflow and NaN cases of libm restored by selects.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

LOG2E = 1.44269504088896341
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
            1.6666665459e-1, 5.0000001201e-1)
EXP_MAX = 88.72283935546875  # above: +inf
EXP_MIN = -103.97208404541016  # below: 0


def _splat(ty: ir.Type, value: float | int) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def _int_type(ty: ir.Type) -> ir.Type:
    i32 = ir.IntType(32)
    return ir.VectorType(i32, ty.count) if isinstance(ty, ir.VectorType) else i32


def exp_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Callable[[str, ir.Type], ir.Function]
            ) -> ir.Value:
    ty = x.type
    fl = ("contract",)
    # 2^n is built from exponent bits, so n stays in [-126, 127]: the top of the range is
    # computed as exp(x - ln 2) * 2
    big = b.fcmp_ordered(">", x, _splat(ty, 88.3762626647949))
    xs = b.select(big, b.fsub(x, _splat(ty, 0.6931471805599453)), x)
    xc = b.call(intrinsic("llvm.maxnum", ty, 2), [xs, _splat(ty, -87.33654)])
    xc = b.call(intrinsic("llvm.minnum", ty, 2), [xc, _splat(ty, 88.3762626647949)])
    n = b.call(intrinsic("llvm.rint", ty, 1), [b.fmul(xc, _splat(ty, LOG2E))])
    r = b.fsub(xc, b.fmul(n, _splat(ty, LN2_HI)), flags=fl)
    r = b.fsub(r, b.fmul(n, _splat(ty, LN2_LO)), flags=fl)
    p = _splat(ty, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = b.fadd(b.fmul(p, r, flags=fl), _splat(ty, c), flags=fl)
    r2 = b.fmul(r, r)
    y = b.fadd(b.fadd(b.fmul(p, r2, flags=fl), r, flags=fl), _splat(ty, 1.0))
    ity = _int_type(ty)
    bits = b.shl(b.add(b.fptosi(n, ity), _splat(ity, 127)), _splat(ity, 23))
    y = b.fmul(y, b.bitcast(bits, ty))
    y = b.select(big, b.fmul(y, _splat(ty, 2.0)), y)
    y = b.select(b.fcmp_ordered(">", x, _splat(ty, EXP_MAX)), _splat(ty, float("inf")), y)
    y = b.select(b.fcmp_ordered("<", x, _splat(ty, EXP_MIN)), _splat(ty, 0.0), y)
    return b.select(b.fcmp_unordered("uno", x, x), x, y)


def tanh_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Callable[[str, ir.Type], ir.Function]
             ) -> ir.Value:
    """tanh(x) = sign(x) * (1 - 2 / (exp(2|x|) + 1)); exact to float32 rounding away from 0,
    and the odd polynomial tanh(x) ~ x - x^3/3 + 2x^5/15 near 0 where that cancels."""
    ty = x.type
    ax = b.call(intrinsic("llvm.fabs", ty, 1), [x])
    e = exp_f32(b, b.fmul(ax, _splat(ty, 2.0)), intrinsic)
    t = b.fsub(_splat(ty, 1.0), b.fdiv(_splat(ty, 2.0), b.fadd(e, _splat(ty, 1.0))))
    x2 = b.fmul(x, x)
    poly = b.fmul(x, b.fadd(_splat(ty, 1.0), b.fmul(x2, b.fadd(
        _splat(ty, -1 / 3), b.fmul(x2, _splat(ty, 2 / 15))))))
    signed = b.call(intrinsic("llvm.copysign", ty, 2), [t, x])
    return b.select(b.fcmp_ordered("<", ax, _splat(ty, 0.0625)), poly, signed)


# erf: its Maclaurin series below |x| = 1 (terms to x^21, under 1e-8 there), and above the
# rational approximation 1 - t(a1 + a2 t + .. + a5 t^4) exp(-x^2), t = 1 / (1 + p|x|), of
# Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, where erf(x) > 0.84)
ERF_SERIES = tuple((-1) ** n * 1.1283791670955126 / (math.factorial(n) * (2 * n + 1))
                   for n in range(11))
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Callable[[str, ir.Type], ir.Function]
            ) -> ir.Value:
    ty = x.type
    ax = b.call(intrinsic("llvm.fabs", ty, 1), [x])
    x2 = b.fmul(x, x)
    p = _splat(ty, ERF_SERIES[-1])
    for c in reversed(ERF_SERIES[:-1]):
        p = b.fadd(b.fmul(p, x2), _splat(ty, c))
    small = b.fmul(x, p)
    t = b.fdiv(_splat(ty, 1.0), b.fadd(b.fmul(ax, _splat(ty, ERF_P)), _splat(ty, 1.0)))
    q = _splat(ty, ERF_A[-1])
    for c in reversed(ERF_A[:-1]):
        q = b.fadd(b.fmul(q, t), _splat(ty, c))
    tail = b.fmul(b.fmul(q, t), exp_f32(b, b.fneg(x2), intrinsic))
    large = b.call(intrinsic("llvm.copysign", ty, 2), [b.fsub(_splat(ty, 1.0), tail), x])
    return b.select(b.fcmp_ordered("<", ax, _splat(ty, 1.0)), small, large)

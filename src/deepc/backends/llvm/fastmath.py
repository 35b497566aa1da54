"""Vectorizable float32 math: exp, sigmoid, tanh and erf inline instead of libm calls.

LLVM turns `llvm.exp` on a vector into one libm call per lane; these expansions stay in
vector registers. exp reduces x = n ln 2 + r (|r| <= ln 2 / 2, n rounded by adding 1.5 * 2^23
so its bits land in the low mantissa), takes e^r from a degree-6 polynomial (relative error
3e-9, fitted for this module) and builds 2^n from exponent bits, in two factors where n can
leave the normal range. Clamping x keeps every path finite; NaN passes through each select.

sigmoid and tanh work on e = exp(-|x|) (or exp(-2|x|)), so their divisor 1 + e lies in [1, 2]:
that division carries `arcp ninf`, which lets LLVM use a reciprocal estimate refined by one
Newton step (x86 vrcp14ps / vrcpps; plain division on targets without a default estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from deepc.ir.expr import Binary, Call, Const, Expr, Unary

Intrinsic = Callable[[str, ir.Type, int], ir.Function]

LOG2E = 1.44269504088896341
LN2_HI = 0.693359375  # few mantissa bits: n * LN2_HI is exact
LN2_LO = -2.12194440e-4
ROUND_MAGIC = 12582912.0  # 1.5 * 2^23: adding it rounds to an integer held in the low bits
ROUND_MAGIC_BITS = 0x4B400000
EXP_POLY = (0.001381459180265665, 0.008368712849915028, 0.04166838899254799,
            0.1666652113199234, 0.4999999403953552, 1.0, 1.0)  # e^r, highest degree first
EXP_HI = 89.0  # exp(89) > FLT_MAX: rounds to +inf
EXP_LO = -105.0  # exp(-105) < half the smallest subnormal: rounds to 0
NORMAL_LO = -87.0  # exp stays a normal float above this
FAST_DIV = ("arcp", "ninf", "contract")
_FL = ("contract",)


def _splat(ty: ir.Type, value: float | int) -> ir.Constant:
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
    return ir.Constant(ty, value)


def _int_type(ty: ir.Type) -> ir.Type:
    i32 = ir.IntType(32)
    return ir.VectorType(i32, ty.count) if isinstance(ty, ir.VectorType) else i32


def _clamp_below(b: ir.IRBuilder, x: ir.Value, lo: float) -> ir.Value:
    """max(x, lo), NaN kept (one maxps on x86)."""
    return b.select(b.fcmp_ordered("<", x, _splat(x.type, lo)), _splat(x.type, lo), x)


def _clamp_above(b: ir.IRBuilder, x: ir.Value, hi: float) -> ir.Value:
    return b.select(b.fcmp_ordered(">", x, _splat(x.type, hi)), _splat(x.type, hi), x)


def _reduce(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(e^r by polynomial, integer bits whose low part is n) for x = n ln 2 + r."""
    ty = x.type
    t = b.fadd(b.fmul(x, _splat(ty, LOG2E), flags=_FL), _splat(ty, ROUND_MAGIC), flags=_FL)
    n = b.fsub(t, _splat(ty, ROUND_MAGIC))
    r = b.fsub(x, b.fmul(n, _splat(ty, LN2_HI), flags=_FL), flags=_FL)
    r = b.fsub(r, b.fmul(n, _splat(ty, LN2_LO), flags=_FL), flags=_FL)
    p = _splat(ty, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        p = b.fadd(b.fmul(p, r, flags=_FL), _splat(ty, c), flags=_FL)
    return p, b.bitcast(t, _int_type(ty))


def _pow2(b: ir.IRBuilder, n: ir.Value, bias: int, ty: ir.Type) -> ir.Value:
    """2^(n + bias) from the low bits of n; n + bias must be in [-126, 127]."""
    ity = n.type
    bits = b.add(b.shl(n, _splat(ity, 23)), _splat(ity, (127 + bias) << 23))
    return b.bitcast(bits, ty)


def exp_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Intrinsic) -> ir.Value:
    ty = x.type
    xc = _clamp_below(b, _clamp_above(b, x, EXP_HI), EXP_LO)
    p, t = _reduce(b, xc)
    # n in [-152, 129]: 2^n as two normal factors so overflow and subnormals round once
    ity = t.type
    n = b.sub(t, _splat(ity, ROUND_MAGIC_BITS))
    half = b.ashr(n, _splat(ity, 1))
    y = b.fmul(p, _pow2(b, half, 0, ty))
    return b.fmul(y, _pow2(b, b.sub(n, half), 0, ty))


def exp_nonpositive(b: ir.IRBuilder, a: ir.Value, subnormal: bool = True) -> ir.Value:
    """exp(a) for a <= 0 (or NaN); without `subnormal`, results below 2^-126 may be off
    (callers that only add the result to 1)."""
    ty = a.type
    p, t = _reduce(b, _clamp_below(b, a, EXP_LO if subnormal else NORMAL_LO))
    if not subnormal:
        return b.fmul(p, _pow2(b, t, 0, ty))
    y = b.fmul(p, _pow2(b, t, 64, ty))  # n in [-152, 0]: scale up, then down once
    return b.fmul(y, _splat(ty, 2.0 ** -64))


def sigmoid_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Intrinsic) -> ir.Value:
    """1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|) (NaN: the latter)."""
    ty = x.type
    e = exp_nonpositive(b, b.fneg(b.call(intrinsic("llvm.fabs", ty, 1), [x])))
    num = b.select(b.fcmp_ordered(">=", x, _splat(ty, 0.0)), _splat(ty, 1.0), e)
    return _divide(b, num, b.fadd(e, _splat(ty, 1.0)))


def _divide(b: ir.IRBuilder, num: ir.Value, den: ir.Value) -> ir.Value:
    """num / den for den in [1, 2] (or NaN), nearly always rounded as a true division: the
    (estimated) reciprocal r gives q = num r, corrected once by r (num - den q)."""
    r = b.fdiv(_splat(den.type, 1.0), den, flags=FAST_DIV)
    q = b.fmul(num, r)
    residual = b.fsub(num, b.fmul(den, q, flags=_FL), flags=_FL)
    return b.fadd(q, b.fmul(r, residual, flags=_FL), flags=_FL)


# tanh(x) = x + x^3 Q(x^2) for |x| < TANH_SMALL (relative error 4e-9, fitted for this module)
TANH_SMALL = 0.625
TANH_POLY = (-0.0057050129398703575, 0.02063911408185959, -0.053739726543426514,
             0.13331443071365356, -0.3333328068256378)


def tanh_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Intrinsic) -> ir.Value:
    """sign(x) (1 - 2e / (1 + e)) with e = exp(-2|x|), and an odd polynomial near 0."""
    ty = x.type
    ax = b.call(intrinsic("llvm.fabs", ty, 1), [x])
    e = exp_nonpositive(b, b.fmul(ax, _splat(ty, -2.0)), subnormal=False)
    q = b.fdiv(b.fmul(e, _splat(ty, 2.0)), b.fadd(e, _splat(ty, 1.0)), flags=FAST_DIV)
    large = b.call(intrinsic("llvm.copysign", ty, 2), [b.fsub(_splat(ty, 1.0), q), x])
    z = b.fmul(x, x)
    p = _splat(ty, TANH_POLY[0])
    for c in TANH_POLY[1:]:
        p = b.fadd(b.fmul(p, z, flags=_FL), _splat(ty, c), flags=_FL)
    small = b.fadd(b.fmul(b.fmul(z, x), p, flags=_FL), x, flags=_FL)
    return b.select(b.fcmp_ordered("<", ax, _splat(ty, TANH_SMALL)), small, large)


def sigmoid_operand(e: Expr) -> Expr | None:
    """x when e is 1 / (1 + exp(-x)) (how elementwise.sigmoid is written), else None."""
    if not (isinstance(e, Binary) and e.op == "div" and _is_one(e.a)):
        return None
    d = e.b
    if not (isinstance(d, Binary) and d.op == "add" and _is_one(d.a)):
        return None
    c = d.b
    if isinstance(c, Call) and c.func == "exp" and isinstance(c.args[0], Unary) \
            and c.args[0].op == "neg":
        return c.args[0].x
    return None


def _is_one(e: Expr) -> bool:
    return isinstance(e, Const) and e.value == 1.0


# erf: its Maclaurin series below |x| = 1 (terms to x^21, under 1e-8 there), and above the
# rational approximation 1 - t(a1 + a2 t + .. + a5 t^4) exp(-x^2), t = 1 / (1 + p|x|), of
# Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, where erf(x) > 0.84)
ERF_SERIES = tuple((-1) ** n * 1.1283791670955126 / (math.factorial(n) * (2 * n + 1))
                   for n in range(11))
ERF_P = 0.3275911
ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
ERF_ONE = 10.0  # erf(x) rounds to 1 beyond this


def erf_f32(b: ir.IRBuilder, x: ir.Value, intrinsic: Intrinsic) -> ir.Value:
    ty = x.type
    ax = b.call(intrinsic("llvm.fabs", ty, 1), [x])
    x2 = b.fmul(x, x)
    p = _splat(ty, ERF_SERIES[-1])
    for c in reversed(ERF_SERIES[:-1]):
        p = b.fadd(b.fmul(p, x2, flags=_FL), _splat(ty, c), flags=_FL)
    small = b.fmul(x, p)
    # clamped, the divisor stays finite for the reciprocal estimate
    axc = _clamp_above(b, ax, ERF_ONE)
    t = b.fdiv(_splat(ty, 1.0), b.fadd(b.fmul(axc, _splat(ty, ERF_P)), _splat(ty, 1.0)),
               flags=FAST_DIV)
    q = _splat(ty, ERF_A[-1])
    for c in reversed(ERF_A[:-1]):
        q = b.fadd(b.fmul(q, t, flags=_FL), _splat(ty, c), flags=_FL)
    tail = b.fmul(b.fmul(q, t), exp_nonpositive(b, b.fneg(b.fmul(axc, axc))))
    large = b.call(intrinsic("llvm.copysign", ty, 2), [b.fsub(_splat(ty, 1.0), tail), x])
    return b.select(b.fcmp_ordered("<", ax, _splat(ty, 1.0)), small, large)

"""Scalar expressions shared by tensor expressions and the loop IR.

Expressions are immutable values with a dtype. Python operators build them, so compute
definitions read like index formulas: `x[n, c, h + r, w + s] * k[f, c, r, s]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

BINARY_OPS = frozenset({
    "add", "sub", "mul", "div", "floordiv", "mod", "fmod", "min", "max", "pow",
    "lt", "le", "eq", "ne", "gt", "ge", "and", "or", "xor",
    "bitand", "bitor", "bitxor", "shl", "shr",
})
COMPARISONS = frozenset({"lt", "le", "eq", "ne", "gt", "ge"})
LOGICAL = frozenset({"and", "or", "xor"})
UNARY_OPS = frozenset({"neg", "not", "bitnot"})
# math intrinsics every backend maps to its library (float in, float out unless noted)
MATH_FUNCS = frozenset({
    "exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan",
    "sinh", "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "round", "trunc", "fabs",
    "exp2", "log2", "rsqrt", "isnan", "isinf",
})

# int8 dot products of 4-byte words (int32 in, int32 out): the sum over the 4 bytes of a's
# byte (unsigned) times b's byte (signed). The suffix names the instruction a CPU backend
# must use (x86 vpdpbusd, ARM sdot, AVX2 vpmaddubsw or vpmaddwd); the bare name lets it widen
# and multiply lane by lane. dot4.maddubs is exact only for b's whose byte pairs (0, 1) and
# (2, 3) have |b0| + |b1| <= 128 (the int16 pair sums saturate); its users check that.
# dot4.wd(a, even, odd) takes b pre-widened (AVX2's vpmaddwd operands, no widening per use):
# even holds b's bytes 0 and 2 as the int16 halves of its word, odd bytes 1 and 3.
DOT_FUNCS = frozenset({"dot4", "dot4.vnni", "dot4.sdot", "dot4.maddubs", "dot4.maddwd",
                       "dot4.wd"})

INDEX = "int64"


class Expr:
    """Base of all scalar expressions. Subclasses are frozen dataclasses with structural
    equality (`==` compares trees; use `.eq()` to build an equality test)."""

    dtype: str
    __slots__ = ()
    _counter: ClassVar[int] = 0

    # arithmetic ----------------------------------------------------------------------------
    def __add__(self, o: Any) -> Expr: return binary("add", self, o)
    def __radd__(self, o: Any) -> Expr: return binary("add", o, self)
    def __sub__(self, o: Any) -> Expr: return binary("sub", self, o)
    def __rsub__(self, o: Any) -> Expr: return binary("sub", o, self)
    def __mul__(self, o: Any) -> Expr: return binary("mul", self, o)
    def __rmul__(self, o: Any) -> Expr: return binary("mul", o, self)
    def __truediv__(self, o: Any) -> Expr: return binary("div", self, o)
    def __rtruediv__(self, o: Any) -> Expr: return binary("div", o, self)
    def __floordiv__(self, o: Any) -> Expr: return binary("floordiv", self, o)
    def __rfloordiv__(self, o: Any) -> Expr: return binary("floordiv", o, self)
    def __mod__(self, o: Any) -> Expr: return binary("mod", self, o)
    def __rmod__(self, o: Any) -> Expr: return binary("mod", o, self)
    def __neg__(self) -> Expr: return Unary("neg", self)
    def __invert__(self) -> Expr: return Unary("not" if self.dtype == "bool" else "bitnot", self)
    def __and__(self, o: Any) -> Expr:
        return binary("and" if self.dtype == "bool" else "bitand", self, o)

    def __or__(self, o: Any) -> Expr:
        return binary("or" if self.dtype == "bool" else "bitor", self, o)

    # comparisons build expressions; structural equality of nodes is `same()`
    def __lt__(self, o: Any) -> Expr: return binary("lt", self, o)
    def __le__(self, o: Any) -> Expr: return binary("le", self, o)
    def __gt__(self, o: Any) -> Expr: return binary("gt", self, o)
    def __ge__(self, o: Any) -> Expr: return binary("ge", self, o)

    def eq(self, o: Any) -> Expr: return binary("eq", self, o)
    def ne(self, o: Any) -> Expr: return binary("ne", self, o)

    def astype(self, dtype: str) -> Expr:
        return self if dtype == self.dtype else Cast(dtype, self)


@dataclass(frozen=True)
class Var(Expr):
    """A loop or index variable (int64)."""

    name: str
    dtype: str = INDEX



@dataclass(frozen=True)
class Const(Expr):
    value: int | float | bool
    dtype: str


@dataclass(frozen=True)
class Binary(Expr):
    op: str
    a: Expr
    b: Expr
    dtype: str


@dataclass(frozen=True)
class Unary(Expr):
    op: str
    x: Expr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.x.dtype


@dataclass(frozen=True)
class Call(Expr):
    """A math intrinsic by name (see MATH_FUNCS), "bitcast" (see `bitcast`), or an int8 dot
    product (DOT_FUNCS)."""

    func: str
    args: tuple[Expr, ...]
    dtype: str


@dataclass(frozen=True)
class Select(Expr):
    """cond ? t : f. Only the chosen side is evaluated (so guarded loads are safe)."""

    cond: Expr
    t: Expr
    f: Expr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.t.dtype


@dataclass(frozen=True)
class Cast(Expr):
    to: str
    x: Expr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.to


@dataclass(frozen=True)
class Load(Expr):
    """Read one element of a tensor (tensor expressions) or a buffer (loop IR)."""

    source: Any  # ir.tensor.Tensor or ir.loop.Buffer
    indices: tuple[Expr, ...]

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.source.dtype


def const(value: Any, dtype: str) -> Const:
    if dtype == "bool":
        return Const(bool(value), dtype)
    if dtype.startswith(("int", "uint")):
        return Const(int(value), dtype)
    return Const(float(value), dtype)


def as_expr(value: Any, like: Expr | None = None) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool):
        return Const(value, "bool")
    if like is not None and like.dtype != "bool":
        return const(value, like.dtype)
    if isinstance(value, int):
        return Const(value, INDEX)
    return Const(float(value), "float32")


def binary(op: str, a: Any, b: Any) -> Expr:
    if op not in BINARY_OPS:
        raise ValueError(f"unknown binary op {op!r}")
    if not isinstance(a, Expr):
        a = as_expr(a, b if isinstance(b, Expr) else None)
    if not isinstance(b, Expr):
        b = as_expr(b, a)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operand dtypes differ ({a.dtype} vs {b.dtype}); cast first")
    folded = _fold(op, a, b)
    if folded is not None:
        return folded
    dtype = "bool" if op in COMPARISONS or op in LOGICAL else a.dtype
    return Binary(op, a, b, dtype)


def _fold(op: str, a: Expr, b: Expr) -> Expr | None:
    """Fold integer index arithmetic with constants, so split loops stay readable."""
    if a.dtype != INDEX:
        return None
    ca = a.value if isinstance(a, Const) else None
    cb = b.value if isinstance(b, Const) else None
    if ca is not None and cb is not None and op in ("add", "sub", "mul", "floordiv", "mod",
                                                      "min", "max"):
        import operator

        fn = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "floordiv": operator.floordiv, "mod": operator.mod, "min": min, "max": max}[op]
        return Const(int(fn(ca, cb)), INDEX)
    if (op == "add" and ca == 0) or (op == "mul" and ca == 1):
        return b
    if (op in ("add", "sub") and cb == 0) or (op in ("mul", "floordiv") and cb == 1):
        return a
    if op == "mul" and (ca == 0 or cb == 0):
        return Const(0, INDEX)
    if op == "mod" and cb == 1:
        return Const(0, INDEX)
    return None


def call(func: str, *args: Any) -> Expr:
    xs = tuple(as_expr(a) for a in args)
    if func in DOT_FUNCS:
        if len(xs) != (3 if func == "dot4.wd" else 2) or any(x.dtype != "int32" for x in xs):
            raise ValueError(f"{func} takes int32 words: a, then b (wd: b's even and odd"
                             " int16 pairs)")
        return Call(func, xs, "int32")
    if func not in MATH_FUNCS:
        raise ValueError(f"unknown math function {func!r}")
    dtype = "bool" if func in ("isnan", "isinf") else xs[0].dtype
    return Call(func, xs, dtype)


def bitcast(x: Expr, to: str) -> Expr:
    """x's bits read as `to`, a type of the same width."""
    return Call("bitcast", (x,), to)


def select(cond: Any, t: Any, f: Any) -> Expr:
    if isinstance(t, Expr) and not isinstance(f, Expr):
        f = as_expr(f, t)
    elif isinstance(f, Expr) and not isinstance(t, Expr):
        t = as_expr(t, f)
    t, f = as_expr(t), as_expr(f)
    if t.dtype != f.dtype:
        raise TypeError(f"select: branch dtypes differ ({t.dtype} vs {f.dtype})")
    return Select(as_expr(cond), t, f)


def minimum(a: Any, b: Any) -> Expr:
    return binary("min", a, b)


def maximum(a: Any, b: Any) -> Expr:
    return binary("max", a, b)


# -- device-level expressions (tiled GPU kernels) ----------------------------------------------
# Vector dtypes are "<scalar>x<lanes>" ("float32x4", "uint32x2"): a register holding lanes.
INTRINSICS = {  # name -> (arity, result dtype; "" = the first argument's)
    "fma": (3, ""),  # a * b + c, one rounding
    "tf32_round": (1, ""),  # float32 rounded to TF32 (the tensor core's operand precision)
    "shfl_xor": (2, ""),  # the value of lane (this lane ^ mask) of the warp
}


def vector_lanes(dtype: str) -> int:
    """Lanes of a vector dtype ("float32x4" -> 4); 1 for a scalar."""
    base, sep, lanes = dtype.rpartition("x")
    return int(lanes) if sep and base and lanes.isdigit() else 1


def scalar_of(dtype: str) -> str:
    return dtype.rpartition("x")[0] if vector_lanes(dtype) > 1 else dtype


@dataclass(frozen=True)
class Intrin(Expr):
    """A device intrinsic by name (see INTRINSICS); each dialect spells it."""

    name: str
    args: tuple[Expr, ...]
    dtype: str


def intrin(name: str, *args: Any) -> Intrin:
    arity, dtype = INTRINSICS[name]
    xs = tuple(as_expr(a) for a in args)
    if len(xs) != arity:
        raise ValueError(f"{name} takes {arity} arguments, not {len(xs)}")
    return Intrin(name, xs, dtype or xs[0].dtype)


@dataclass(frozen=True)
class FlatLoad(Expr):
    """Read at a row-major element `offset` of a buffer: one element, or (a vector `dtype`)
    `lanes` consecutive elements reinterpreted as that vector (aligned to its size)."""

    source: Any  # ir.loop.Buffer
    offset: Expr
    dtype: str


@dataclass(frozen=True)
class Lane(Expr):
    """Lane `index` of a vector value."""

    x: Expr
    index: int

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return scalar_of(self.x.dtype)


@dataclass(frozen=True)
class Pack(Expr):
    """A vector value from its lanes."""

    dtype: str
    lanes: tuple[Expr, ...]


@dataclass(frozen=True)
class AddressOf(Expr):
    """The address of element `offset` of a buffer (an intrinsic's operand fragment)."""

    source: Any  # ir.loop.Buffer
    offset: Expr
    dtype: str = "handle"

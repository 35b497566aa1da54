"""Elementwise and broadcasting ops: math, activations, comparisons, logic, cast, where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.numeric import erf
from deepc.ir.types import TensorType, itemsize, np_dtype
from deepc.ops.common import broadcast_index, broadcast_shape, nary, unary
from deepc.ops.registry import FusionKind, Op


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _round_half_even(x: np.ndarray, a: Attrs) -> np.ndarray:
    return np.round(x)


# -- unary math -------------------------------------------------------------------------------
UNARY_MATH = {
    "abs": lambda x, a: np.abs(x),
    "neg": lambda x, a: np.negative(x),
    "exp": lambda x, a: np.exp(x),
    "log": lambda x, a: np.log(x),
    "sqrt": lambda x, a: np.sqrt(x),
    "reciprocal": lambda x, a: np.reciprocal(x),
    "floor": lambda x, a: np.floor(x),
    "ceil": lambda x, a: np.ceil(x),
    "round": _round_half_even,
    "sign": lambda x, a: np.sign(x),
    "sin": lambda x, a: np.sin(x),
    "cos": lambda x, a: np.cos(x),
    "tan": lambda x, a: np.tan(x),
    "asin": lambda x, a: np.arcsin(x),
    "acos": lambda x, a: np.arccos(x),
    "atan": lambda x, a: np.arctan(x),
    "sinh": lambda x, a: np.sinh(x),
    "cosh": lambda x, a: np.cosh(x),
    "asinh": lambda x, a: np.arcsinh(x),
    "acosh": lambda x, a: np.arccosh(x),
    "atanh": lambda x, a: np.arctanh(x),
    "erf": lambda x, a: erf(x),
    "identity": lambda x, a: x.copy(),
    "bitwise_not": lambda x, a: np.bitwise_not(x),
    "not": lambda x, a: np.logical_not(x),
}

# -- activations (attrs follow ONNX names and defaults, filled in by the frontend) --------------
ACTIVATIONS = {
    "relu": lambda x, a: np.maximum(x, 0),
    "sigmoid": lambda x, a: sigmoid(x),
    "tanh": lambda x, a: np.tanh(x),
    "softplus": lambda x, a: np.logaddexp(x, 0),
    "softsign": lambda x, a: x / (1 + np.abs(x)),
    "leaky_relu": lambda x, a: np.where(x >= 0, x, x * a["alpha"]),
    "elu": lambda x, a: np.where(x > 0, x, a["alpha"] * (np.exp(np.minimum(x, 0)) - 1)),
    "celu": lambda x, a: np.maximum(x, 0)
    + np.minimum(0, a["alpha"] * (np.exp(np.minimum(x, 0) / a["alpha"]) - 1)),
    "selu": lambda x, a: a["gamma"] * np.where(
        x > 0, x, a["alpha"] * (np.exp(np.minimum(x, 0)) - 1)),
    "hard_sigmoid": lambda x, a: np.clip(a["alpha"] * x + a["beta"], 0, 1),
    "hard_swish": lambda x, a: x * np.clip(x / 6 + 0.5, 0, 1),
    "thresholded_relu": lambda x, a: np.where(x > a["alpha"], x, 0),
    "shrink": lambda x, a: np.where(x < -a["lambd"], x + a["bias"],
                                    np.where(x > a["lambd"], x - a["bias"], 0)),
    "mish": lambda x, a: x * np.tanh(np.logaddexp(x, 0)),
    "gelu": lambda x, a: (
        0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
        if a["approximate"] == "tanh" else 0.5 * x * (1 + erf(x / np.sqrt(2).astype(x.dtype)))
    ),
    # clip with static bounds; absent bounds are None
    "clip": lambda x, a: (np.clip(x, a["min"], a["max"])
                          if a["min"] is not None or a["max"] is not None else x.copy()),
}



# -- compute definitions: the same functions as index-free expressions of one element --------
def _c(x: E.Expr, v: float) -> E.Expr:
    return E.as_expr(v, x)


def _is_float(x: E.Expr) -> bool:
    return x.dtype.startswith("float")


def _exp(x: E.Expr) -> E.Expr:
    return E.call("exp", x)


def _sigmoid(x: E.Expr) -> E.Expr:
    return _c(x, 1.0) / (_c(x, 1.0) + _exp(-x))


def _softplus(x: E.Expr) -> E.Expr:
    t = _exp(-E.call("fabs", x))
    # log1p(t) without a log1p: log(u) * t / (u - 1) with u = 1 + t rounded (Goldberg)
    u = _c(x, 1.0) + t
    log1p = E.select(u.eq(_c(x, 1.0)), t, E.call("log", u) * t / (u - _c(x, 1.0)))
    return E.maximum(x, _c(x, 0.0)) + log1p


def _erf_gelu(x: E.Expr) -> E.Expr:
    return _c(x, 0.5) * x * (_c(x, 1.0) + E.call("erf", x * _c(x, 1 / np.sqrt(2))))


def _tanh_gelu(x: E.Expr) -> E.Expr:
    inner = _c(x, np.sqrt(2 / np.pi)) * (x + _c(x, 0.044715) * x * x * x)
    return _c(x, 0.5) * x * (_c(x, 1.0) + E.call("tanh", inner))


def _clip(x: E.Expr, a: Attrs) -> E.Expr:
    if a["min"] is not None:
        x = E.maximum(x, _c(x, a["min"]))
    if a["max"] is not None:
        x = E.minimum(x, _c(x, a["max"]))
    return x


_ZERO_ONE = {"zero": 0.0, "one": 1.0}
UNARY_TE = {
    "abs": lambda x, a: E.call("fabs", x) if _is_float(x) else E.select(x < _c(x, 0), -x, x),
    "neg": lambda x, a: -x,
    "reciprocal": lambda x, a: _c(x, 1.0) / x,
    "round": lambda x, a: E.call("round", x),
    "sign": lambda x, a: E.select(x > _c(x, 0), _c(x, 1), E.select(x < _c(x, 0), _c(x, -1),
                                                                 _c(x, 0))),
    "identity": lambda x, a: x,
    "bitwise_not": lambda x, a: ~x,
    "not": lambda x, a: ~x,
    "relu": lambda x, a: E.maximum(x, _c(x, 0)),
    "sigmoid": lambda x, a: _sigmoid(x),
    "softplus": lambda x, a: _softplus(x),
    "softsign": lambda x, a: x / (_c(x, 1.0) + E.call("fabs", x)),
    "leaky_relu": lambda x, a: E.select(x >= _c(x, 0), x, x * _c(x, a["alpha"])),
    "elu": lambda x, a: E.select(x > _c(x, 0), x, _c(x, a["alpha"]) * (_exp(x) - _c(x, 1))),
    "celu": lambda x, a: E.maximum(x, _c(x, 0)) + E.minimum(
        _c(x, 0), _c(x, a["alpha"]) * (_exp(x / _c(x, a["alpha"])) - _c(x, 1))),
    "selu": lambda x, a: _c(x, a["gamma"]) * E.select(
        x > _c(x, 0), x, _c(x, a["alpha"]) * (_exp(x) - _c(x, 1))),
    "hard_sigmoid": lambda x, a: E.minimum(E.maximum(
        _c(x, a["alpha"]) * x + _c(x, a["beta"]), _c(x, 0)), _c(x, 1)),
    "hard_swish": lambda x, a: x * E.minimum(E.maximum(
        x * _c(x, 1 / 6) + _c(x, 0.5), _c(x, 0)), _c(x, 1)),
    "thresholded_relu": lambda x, a: E.select(x > _c(x, a["alpha"]), x, _c(x, 0)),
    "shrink": lambda x, a: E.select(x < _c(x, -a["lambd"]), x + _c(x, a["bias"]), E.select(
        x > _c(x, a["lambd"]), x - _c(x, a["bias"]), _c(x, 0))),
    "mish": lambda x, a: x * E.call("tanh", _softplus(x)),
    "gelu": lambda x, a: _tanh_gelu(x) if a["approximate"] == "tanh" else _erf_gelu(x),
    "clip": _clip,
    "isnan": lambda x, a: E.call("isnan", x),
}
for _f in ("exp", "log", "sqrt", "floor", "ceil", "sin", "cos", "tan", "asin", "acos", "atan",
           "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "tanh"):
    UNARY_TE[_f] = lambda x, a, f=_f: E.call(f, x)


def _isinf_te(x: E.Expr, a: Attrs) -> E.Expr:
    pos = (x > _c(x, 0)) & E.call("isinf", x)
    neg = (x < _c(x, 0)) & E.call("isinf", x)
    if a["detect_positive"] and a["detect_negative"]:
        return E.call("isinf", x)
    return pos if a["detect_positive"] else neg if a["detect_negative"] else E.as_expr(False)


for _name, _fn in {**UNARY_MATH, **ACTIVATIONS}.items():
    unary(_name, lambda x, a, f=_fn: _with_errstate(f, x, a), te=UNARY_TE.get(_name))

unary("isnan", lambda x, a: np.isnan(x), out_dtype="bool", te=UNARY_TE["isnan"])
unary("isinf", lambda x, a: (np.isposinf(x) if a["detect_positive"] else False)
      | (np.isneginf(x) if a["detect_negative"] else False), out_dtype="bool", te=_isinf_te)


def _with_errstate(fn, x: np.ndarray, a: Attrs) -> np.ndarray:  # type: ignore[no-untyped-def]
    with np.errstate(all="ignore"):
        return fn(x, a)


# -- cast ---------------------------------------------------------------------------------------
cast = Op("cast", FusionKind.ELEMWISE,
          doc="convert to attrs['to'] (a dtype name); with attrs['saturate'], values past a "
              "float8 format's range become its largest (onnx's saturate)")


def saturation(to: str, attrs: Attrs) -> float | None:
    """The bound a cast to `to` clamps to first, if it saturates (float8 formats only)."""
    if not attrs.get("saturate") or not to.startswith("float8") or to == "float8_e8m0fnu":
        return None
    return float(ml_dtypes.finfo(to).max)


@cast.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    assert ins[0] is not None
    return TensorType(ins[0].shape, str(attrs["to"]))


@cast.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, to = ins[0], str(attrs["to"])
    with np.errstate(all="ignore"):
        if to == "string":
            return np.vectorize(lambda v: str(v), otypes=[object])(x)
        if x.dtype == object:  # strings to numbers
            return x.astype(np.float64).astype(np_dtype(to))
        if (bound := saturation(to, attrs)) is not None:
            x = np.clip(x.astype(np.float32), -bound, bound)  # NaN stays NaN
        return x.astype(np_dtype(to))


@cast.def_compute
def _(ins, attrs, outs):  # type: ignore[no-untyped-def]
    from deepc.ir.tensor import compute

    x, to = ins[0], str(attrs["to"])
    if "string" in (to, x.dtype):
        raise NotImplementedError("string casts are not compiled")
    if (bound := saturation(to, attrs)) is not None:
        def clamped(*i: Any) -> Any:
            v = x[i].astype("float32")
            inside = E.minimum(E.maximum(v, E.const(-bound, "float32")),
                               E.const(bound, "float32"))
            return E.select(E.call("isnan", v), v, inside).astype(to)

        return compute(x.shape, clamped, "cast")
    return compute(x.shape, lambda *i: x[i].astype(to), "cast")


bitcast = Op("bitcast", FusionKind.ELEMWISE,
             doc="reinterpret each element's bits as attrs['to'], a type of the same width")


@bitcast.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, to = ins[0], str(attrs["to"])
    assert x is not None
    if "string" in (x.dtype, to) or itemsize(x.dtype) != itemsize(to):
        raise ValueError(f"bitcast from {x.dtype} to {to}: only between types of one width")
    return TensorType(x.shape, to)


@bitcast.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return ins[0].view(np_dtype(str(attrs["to"])))


@bitcast.def_compute
def _(ins, attrs, outs):  # type: ignore[no-untyped-def]
    from deepc.ir.tensor import compute

    x, to = ins[0], str(attrs["to"])
    return compute(x.shape, lambda *i: E.bitcast(x[i], to), "bitcast")


# -- binary and n-ary arithmetic --------------------------------------------------------------
def _div(x: np.ndarray, y: np.ndarray, a: Attrs) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        with np.errstate(all="ignore"):
            q = np.trunc(np.true_divide(x, y))
        return q.astype(x.dtype)
    with np.errstate(all="ignore"):
        return np.true_divide(x, y)


def _mod(x: np.ndarray, y: np.ndarray, a: Attrs) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.fmod(x, y) if a.get("fmod", 0) else np.mod(x, y)


def _pow(x: np.ndarray, y: np.ndarray, a: Attrs) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.power(x, y.astype(x.dtype) if x.dtype.kind == "f" else y)


BINARY = {
    "add": lambda x, y, a: x + y,
    "sub": lambda x, y, a: x - y,
    "mul": lambda x, y, a: x * y,
    "div": _div,
    "mod": _mod,
    "pow": _pow,
    "prelu": lambda x, s, a: np.where(x < 0, x * s, x),
    "bitwise_and": lambda x, y, a: np.bitwise_and(x, y),
    "bitwise_or": lambda x, y, a: np.bitwise_or(x, y),
    "bitwise_xor": lambda x, y, a: np.bitwise_xor(x, y),
    "bit_shift": lambda x, y, a: (np.left_shift(x, y) if a["direction"] == "LEFT"
                                  else np.right_shift(x, y)),
}
BINARY_TE = {
    "add": lambda x, y, a: x + y,
    "sub": lambda x, y, a: x - y,
    "mul": lambda x, y, a: x * y,
    "div": lambda x, y, a: x / y,
    "mod": lambda x, y, a: E.binary("fmod" if a.get("fmod", 0) else "mod", x, y),
    "pow": lambda x, y, a: E.binary("pow", x, y.astype(x.dtype)),
    "prelu": lambda x, s, a: E.select(x < _c(x, 0), x * s, x),
    "bitwise_and": lambda x, y, a: E.binary("bitand", x, y),
    "bitwise_or": lambda x, y, a: E.binary("bitor", x, y),
    "bitwise_xor": lambda x, y, a: E.binary("bitxor", x, y),
    "bit_shift": lambda x, y, a: _bit_shift(x, y, a["direction"] == "LEFT"),
}
def _bit_shift(x: E.Expr, y: E.Expr, left: bool) -> E.Expr:
    """Shifts by a negative amount or by the width or more give what numpy gives (0, or the
    sign for a right shift of a negative number) instead of LLVM's poison."""
    width = int("".join(c for c in x.dtype if c.isdigit()))
    shifted = E.binary("shl" if left else "shr", x, y)
    in_range = (y >= _c(y, 0)) & (y < _c(y, width))
    past = _c(x, 0)
    if not left and x.dtype.startswith("int"):
        past = E.select(x < _c(x, 0), _c(x, -1), _c(x, 0))
    return E.select(in_range, shifted, past)


for _name, _fn in BINARY.items():
    nary(_name, _fn, te=BINARY_TE[_name])

NARY = {
    "max": lambda *xs: _fold(np.maximum, xs),
    "min": lambda *xs: _fold(np.minimum, xs),
    "sum": lambda *xs: _fold(np.add, xs),
    "mean": lambda *xs: _fold(np.add, xs) / len(xs),
}


def _fold(fn, xs):  # type: ignore[no-untyped-def]
    acc = xs[0]
    for x in xs[1:]:
        acc = fn(acc, x)
    return acc


NARY_TE = {
    "max": lambda *xs: _fold(E.maximum, xs),
    "min": lambda *xs: _fold(E.minimum, xs),
    "sum": lambda *xs: _fold(E.Expr.__add__, xs),
    "mean": lambda *xs: _fold(E.Expr.__add__, xs) / _c(xs[0], len(xs)),
}
for _name, _fn in NARY.items():
    nary(_name, lambda *args, f=_fn: f(*args[:-1]), te=lambda *a, f=NARY_TE[_name]: f(*a[:-1]))

COMPARE = {
    "equal": np.equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
    "and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
}
COMPARE_TE = {"equal": "eq", "less": "lt", "less_equal": "le", "greater": "gt",
              "greater_equal": "ge", "and": "and", "or": "or", "xor": "xor"}
for _name, _fn in COMPARE.items():
    nary(_name, lambda x, y, a, f=_fn: f(x, y), out_dtype="bool",
         te=lambda x, y, a, op=COMPARE_TE[_name]: E.binary(op, x, y))


# -- where --------------------------------------------------------------------------------------
where = Op("where", FusionKind.BROADCAST, doc="cond ? x : y with broadcasting")


@where.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    c, x, y = ins
    assert c is not None and x is not None and y is not None
    return TensorType(broadcast_shape(c.shape, x.shape, y.shape), x.dtype)


@where.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.where(ins[0], ins[1], ins[2])


@where.def_compute
def _(ins, attrs, outs):  # type: ignore[no-untyped-def]
    from deepc.ir.tensor import compute

    c, x, y = ins
    return compute(outs[0].shape, lambda *i: E.select(
        c[broadcast_index(i, c.shape)], x[broadcast_index(i, x.shape)],
        y[broadcast_index(i, y.shape)]), "where")

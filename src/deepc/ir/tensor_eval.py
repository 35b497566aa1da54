"""Evaluate tensor expressions with numpy, to test compute definitions against references.

Axis variables become broadcast `arange`s, loads become fancy indexing (indices clipped, so
a load guarded by a select never faults), reductions add trailing axes and reduce them.
Slow for big shapes; meant for tests on small ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from deepc.ir.expr import DOT_FUNCS, Binary, Call, Cast, Const, Expr, Load, Select, Unary, Var
from deepc.ir.numeric import erf
from deepc.ir.tensor import IN_ORDER, Reduce, Tensor, stages
from deepc.ir.types import np_dtype

_BIN: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "min": np.minimum,
    "max": np.maximum, "pow": np.power, "lt": np.less, "le": np.less_equal, "eq": np.equal,
    "ne": np.not_equal, "gt": np.greater, "ge": np.greater_equal, "and": np.logical_and,
    "or": np.logical_or, "xor": np.logical_xor, "bitand": np.bitwise_and,
    "bitor": np.bitwise_or, "bitxor": np.bitwise_xor, "shl": np.left_shift,
    "shr": np.right_shift, "floordiv": np.floor_divide, "mod": np.mod, "fmod": np.fmod,
}


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(np.result_type(a, b), np.integer):
        b = np.where(b == 0, 1, b)
        return np.trunc(np.true_divide(a, b)).astype(np.result_type(a, b))
    return np.true_divide(a, b)


_CALL: dict[str, Callable[[Any], Any]] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "trunc": np.trunc, "fabs": np.abs, "exp2": np.exp2, "log2": np.log2,
    "rsqrt": lambda x: 1 / np.sqrt(x), "isnan": np.isnan, "isinf": np.isinf,
}


def dot4(a: np.ndarray, b: np.ndarray, odd: np.ndarray | None = None) -> np.ndarray:
    """DOT_FUNCS: sum over the 4 bytes of unsigned a-bytes times signed b-bytes; with `odd`
    (dot4.wd), b and odd are b's int16 pairs: bytes 0, 2 and bytes 1, 3."""
    if odd is not None:
        b = pairs_to_words(np.asarray(b, np.int32), np.asarray(odd, np.int32))
    a, b = np.broadcast_arrays(np.asarray(a, np.int32), np.asarray(b, np.int32))
    ua = np.ascontiguousarray(a)[..., None].view(np.uint8).astype(np.int32)
    sb = np.ascontiguousarray(b)[..., None].view(np.int8).astype(np.int32)
    return (ua * sb).sum(axis=-1, dtype=np.int32)


def pairs_to_words(even: np.ndarray, odd: np.ndarray) -> np.ndarray:
    """int32 words of signed bytes from their int16-widened pairs (dot4.wd's operands):
    even holds bytes 0 and 2, odd bytes 1 and 3, each the low byte of an int16 half."""
    even, odd = np.broadcast_arrays(even, odd)
    e = np.ascontiguousarray(even, "<i4")[..., None].view("<i2")
    o = np.ascontiguousarray(odd, "<i4")[..., None].view("<i2")
    b = np.stack([e[..., 0], o[..., 0], e[..., 1], o[..., 1]], axis=-1).astype(np.int8)
    return np.ascontiguousarray(b).view("<i4")[..., 0]


def _erf(x: np.ndarray) -> np.ndarray:
    return erf(np.asarray(x))


def evaluate(outputs: Sequence[Tensor], feeds: Mapping[Tensor, np.ndarray]) -> list[np.ndarray]:
    """Values of `outputs` given arrays for every placeholder they depend on."""
    values: dict[int, np.ndarray] = {id(t): np.asarray(v) for t, v in feeds.items()}
    for t in stages(outputs):
        if id(t) in values:
            continue
        if t.is_placeholder:
            raise KeyError(f"no value fed for placeholder {t.name!r}")
        if t.extern is not None:
            raise NotImplementedError(f"{t.name}: extern stages are not evaluated here")
        values[id(t)] = _eval_stage(t, values)
    return [values[id(t)] for t in outputs]


def _eval_stage(t: Tensor, values: dict[int, np.ndarray]) -> np.ndarray:
    assert t.body is not None
    rank = len(t.shape)
    body = t.body
    reduce_axes = body.axes if isinstance(body, Reduce) else ()
    total = rank + len(reduce_axes)
    env: dict[Var, np.ndarray] = {}
    for k, (var, n) in enumerate(zip(t.axes, t.shape)):
        env[var] = np.arange(n, dtype=np.int64).reshape([n if j == k else 1 for j in range(total)])
    for k, iv in enumerate(reduce_axes):
        env[iv] = np.arange(iv.extent, dtype=np.int64).reshape(
            [iv.extent if j == rank + k else 1 for j in range(total)])
    inner = body.body if isinstance(body, Reduce) else body
    with np.errstate(all="ignore"):
        value = np.asarray(_eval(inner, env, values))
        value = np.broadcast_to(value, tuple(t.shape) + tuple(iv.extent for iv in reduce_axes))
        if isinstance(body, Reduce):
            axes = tuple(range(rank, total))
            fn = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[body.combiner]
            if value.size == 0:
                value = np.full(t.shape, body.identity().value)
            elif t.tag == IN_ORDER and body.combiner == "sum":  # np.sum pairs the terms
                flat = value.reshape((*t.shape, -1)).astype(np_dtype(t.dtype))
                value = np.add.accumulate(flat, axis=-1)[..., -1]
            else:
                value = fn(value, axis=axes)
    return np.asarray(value).astype(np_dtype(t.dtype))


def _eval(e: Expr, env: dict[Var, np.ndarray], values: dict[int, np.ndarray]) -> Any:
    if isinstance(e, Var):
        return env[e]
    if isinstance(e, Const):
        return np.asarray(e.value, dtype=np_dtype(e.dtype))
    if isinstance(e, Binary):
        a, b = _eval(e.a, env, values), _eval(e.b, env, values)
        out = _div(a, b) if e.op == "div" else _BIN[e.op](a, b)
        return np.asarray(out).astype(np_dtype(e.dtype), copy=False)
    if isinstance(e, Unary):
        x = _eval(e.x, env, values)
        return {"neg": np.negative, "not": np.logical_not, "bitnot": np.invert}[e.op](x)
    if isinstance(e, Cast):
        return np.asarray(_eval(e.x, env, values)).astype(np_dtype(e.to))
    if isinstance(e, Call):
        args = [_eval(a, env, values) for a in e.args]
        if e.func == "bitcast":
            return np.asarray(args[0]).view(np_dtype(e.dtype))
        fn = _erf if e.func == "erf" else dot4 if e.func in DOT_FUNCS else _CALL[e.func]
        return np.asarray(fn(*args)).astype(np_dtype(e.dtype), copy=False)
    if isinstance(e, Select):
        return np.where(_eval(e.cond, env, values), _eval(e.t, env, values),
                        _eval(e.f, env, values))
    if isinstance(e, Load):
        arr = values[id(e.source)]
        idx = tuple(np.clip(np.asarray(_eval(i, env, values)), 0, max(n - 1, 0))
                    for i, n in zip(e.indices, arr.shape))
        if arr.size == 0:
            return np.zeros(np.broadcast_shapes(*(i.shape for i in idx)), arr.dtype)
        return arr[idx] if idx else arr[()]
    raise TypeError(f"cannot evaluate {type(e).__name__}")

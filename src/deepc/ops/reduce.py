"""Reduction ops (sum, mean, max, norms, log-sum-exp...) and argmax/argmin."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod
from typing import Any

import ml_dtypes
import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import (
    IterVar,
    Reduce,
    Tensor,
    compute,
    reduce_axis,
    rmax,
    rmin,
    rprod,
    rsum,
)
from deepc.ir.types import FLOAT_DTYPES, TensorType
from deepc.ops.conv import acc_dtype
from deepc.ops.elementwise import UNARY_TE
from deepc.ops.registry import FusionKind, Op

Axes = tuple[int, ...]


def reduced_axes(attrs: Attrs, rank: int) -> Axes:
    """The attrs' normalized `axes`, where an empty tuple means every axis."""
    axes = tuple(int(a) for a in attrs.get("axes", ()) or range(rank))
    if any(not 0 <= a < rank for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes} are not distinct normalized axes of rank {rank}")
    return axes


def reduced_shape(shape: tuple[int, ...], axes: Axes, keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if d in axes else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in axes)


def _check_nonempty(x: TensorType, axes: Axes, what: str) -> None:
    if axes and prod(x.shape[a] for a in axes) == 0:
        raise ValueError(f"{what} over an empty set of values is undefined (zero-size axis)")


def _wide(x: np.ndarray) -> np.ndarray:
    """float16 accumulates in float32: its 11-bit mantissa loses long sums."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _sum(x: np.ndarray, axes: Axes) -> np.ndarray:
    # integer sums keep their own dtype so overflow wraps as in onnxruntime
    return np.sum(x, axis=axes, keepdims=True, dtype=x.dtype if x.dtype.kind in "iu" else None)


def _mean(x: np.ndarray, axes: Axes) -> np.ndarray:
    total, count = _sum(x, axes), max(prod(x.shape[a] for a in axes), 1)
    if x.dtype.kind in "iu":  # integer means truncate toward zero, as C division does
        return np.sign(total) * (np.abs(total) // count)
    return total / count


def _log_sum_exp(x: np.ndarray, axes: Axes) -> np.ndarray:
    x = x.astype(np.float64) if x.dtype.kind in "iub" else x
    shift = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros((), x.dtype)
    shift = np.where(np.isfinite(shift), shift, 0)  # all -inf (or an inf): no shift needed
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - shift), axis=axes, keepdims=True)) + shift


# fn(x, axes) -> result with keepdims=True, before the cast back to x's dtype
REDUCTIONS: dict[str, Callable[[np.ndarray, Axes], np.ndarray]] = {
    "reduce_sum": lambda x, ax: _sum(_wide(x), ax),
    "reduce_mean": lambda x, ax: _mean(_wide(x), ax),
    "reduce_max": lambda x, ax: np.max(x, axis=ax, keepdims=True, initial=_lowest(x.dtype)),
    "reduce_min": lambda x, ax: np.min(x, axis=ax, keepdims=True, initial=_highest(x.dtype)),
    "reduce_prod": lambda x, ax: np.prod(_wide(x), axis=ax, keepdims=True,
                                         dtype=x.dtype if x.dtype.kind in "iu" else None),
    "reduce_l1": lambda x, ax: _sum(np.abs(_wide(x)), ax),
    "reduce_l2": lambda x, ax: np.sqrt(_sum(np.square(_wide(x)), ax)),
    "reduce_log_sum": lambda x, ax: np.log(_sum(_wide(x), ax)),
    "reduce_log_sum_exp": lambda x, ax: _log_sum_exp(_wide(x), ax),
    "reduce_sum_square": lambda x, ax: _sum(np.square(_wide(x)), ax),
}


def _lowest(dtype: np.dtype) -> Any:
    """ReduceMax of nothing (opset 18+): the type's lowest value (-inf, False)."""
    if dtype.name in FLOAT_DTYPES:
        return -np.inf
    return False if dtype.kind == "b" else ml_dtypes.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    if dtype.name in FLOAT_DTYPES:
        return np.inf
    return True if dtype.kind == "b" else ml_dtypes.iinfo(dtype).max


EMPTY_VALUE = {"reduce_max": _lowest, "reduce_min": _highest}


# -- compute definitions --------------------------------------------------------------------
def _acc(dtype: str) -> str:
    return acc_dtype(np.dtype(dtype)).name


def _float_math(fn: str, e: E.Expr) -> E.Expr:
    """A math function of an integer sum goes through float64, as numpy's does."""
    return E.call(fn, e if e.dtype.startswith("float") else e.astype("float64"))


def _source(x: Tensor, attrs: Attrs, o: Sequence[E.Var], rs: dict[int, IterVar]) -> E.Expr:
    """x's element at output index `o` and reduction variables `rs` (by input dim)."""
    keep, rest, idx = bool(attrs["keepdims"]), iter(o), []
    for d in range(x.rank):
        if d not in rs:
            idx.append(next(rest))
            continue
        idx.append(rs[d])
        if keep:
            next(rest)  # the reduced axis kept with size 1
    return x[tuple(idx)]


def reduce_stage(x: Tensor, attrs: Attrs, axes: Axes, shape: Sequence[int], name: str,
                 rfn: Callable[[E.Expr, list[IterVar]], Reduce],
                 term: Callable[[E.Expr, tuple[E.Var, ...]], E.Expr]) -> Tensor:
    """One reduction stage over `axes` of x: rfn(term(x element, output index), axes)."""

    def fn(*o: E.Var) -> Reduce:
        rs = {d: reduce_axis(x.shape[d], f"{name}.r{d}") for d in axes}
        return rfn(term(_source(x, attrs, o, rs), o), list(rs.values()))

    return compute(shape, fn, name)


def _square(v: E.Expr) -> E.Expr:
    return v * v


def _same(v: E.Expr) -> E.Expr:
    return v


# reduce_x: (combiner, widen the input, term of an element, finish of the accumulator given
# the count of reduced elements, or None)
ReduceTE = tuple[Callable[..., Reduce], bool, Callable[[E.Expr], E.Expr],
                 Callable[[E.Expr, int], E.Expr] | None]
REDUCTIONS_TE: dict[str, ReduceTE] = {
    "reduce_sum": (rsum, True, _same, None),
    # integer division truncates toward zero, as the reference's integer mean does
    "reduce_mean": (rsum, True, _same, lambda s, n: s / E.as_expr(max(n, 1), s)),
    "reduce_max": (rmax, False, _same, None),
    "reduce_min": (rmin, False, _same, None),
    "reduce_prod": (rprod, True, _same, None),
    "reduce_l1": (rsum, True, lambda v: UNARY_TE["abs"](v, {}), None),
    "reduce_l2": (rsum, True, _square, lambda s, n: _float_math("sqrt", s)),
    "reduce_log_sum": (rsum, True, _same, lambda s, n: _float_math("log", s)),
    "reduce_sum_square": (rsum, True, _square, None),
}


def _reduction_compute(name: str, ins: Sequence[Any], attrs: Attrs,
                       outs: Sequence[TensorType]) -> Tensor:
    x, out = ins[0], outs[0]
    axes = reduced_axes(attrs, x.rank)
    if name in EMPTY_VALUE and prod(x.shape[d] for d in axes) == 0:
        value = EMPTY_VALUE[name](np.dtype(out.dtype))
        return compute(out.shape, lambda *o: E.const(value, out.dtype), name)
    rfn, widen, term, finish = REDUCTIONS_TE[name]
    wide = _acc(x.dtype) if widen else x.dtype
    alone = finish is None and wide == out.dtype  # the reduction is the whole op
    acc = reduce_stage(x, attrs, axes, out.shape, name if alone else f"{name}.acc", rfn,
                       lambda v, o: term(v.astype(wide)))
    if alone:
        return acc
    count = prod(x.shape[d] for d in axes)
    done = finish or (lambda s, n: s)
    return compute(out.shape, lambda *o: done(acc[o], count).astype(out.dtype), name)


def _log_sum_exp_compute(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]
                         ) -> Tensor:
    """Shifted by the maximum so exp cannot overflow; an infinite (or all -inf) maximum is no
    shift, as in the reference."""
    x, out, name = ins[0], outs[0], "reduce_log_sum_exp"
    axes = reduced_axes(attrs, x.rank)
    wide = _acc(x.dtype) if x.dtype.startswith("float") else "float64"
    top = reduce_stage(x, attrs, axes, out.shape, f"{name}.max", rmax,
                       lambda v, o: v.astype(wide))

    def shift(o: Sequence[E.Var]) -> E.Expr:
        m = top[tuple(o)]
        finite = ~(E.call("isinf", m) | E.call("isnan", m))
        return E.select(finite, m, E.as_expr(0.0, m))

    total = reduce_stage(x, attrs, axes, out.shape, f"{name}.sum", rsum,
                         lambda v, o: E.call("exp", v.astype(wide) - shift(o)))
    return compute(out.shape, lambda *o: (E.call("log", total[o]) + shift(o)).astype(out.dtype),
                   name)


def _register_reduction(name: str, fn: Callable[[np.ndarray, Axes], np.ndarray]) -> Op:
    op = Op(name, FusionKind.REDUCTION,
            doc="reduce attrs['axes'] (empty: all) and keep them as size 1 if attrs['keepdims']")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        axes = reduced_axes(attrs, x.rank)
        return TensorType(reduced_shape(x.shape, axes, bool(attrs["keepdims"])), x.dtype)

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = ins[0]
        axes = reduced_axes(attrs, x.ndim)
        with np.errstate(all="ignore"):
            out = fn(x, axes)
        out = np.asarray(out).astype(x.dtype, copy=False)
        return out if attrs["keepdims"] else out.reshape(reduced_shape(x.shape, axes, False))

    @op.def_compute
    def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
        if name == "reduce_log_sum_exp":
            return _log_sum_exp_compute(ins, attrs, outs)
        return _reduction_compute(name, ins, attrs, outs)

    return op


for _name, _fn in REDUCTIONS.items():
    _register_reduction(_name, _fn)


# -- argmax / argmin --------------------------------------------------------------------------
def _register_arg(name: str, fn: Callable[..., np.ndarray]) -> Op:
    op = Op(name, FusionKind.REDUCTION,
            doc="int64 position of the extreme along attrs['axis']; ties go to the first one, "
                "or the last with attrs['select_last_index']")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        axis = int(attrs["axis"])
        if not 0 <= axis < x.rank:
            raise ValueError(f"axis {axis} is not a normalized axis of rank {x.rank}")
        _check_nonempty(x, (axis,), name)
        return TensorType(reduced_shape(x.shape, (axis,), bool(attrs["keepdims"])), "int64")

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x, axis = ins[0], int(attrs["axis"])
        if attrs["select_last_index"]:
            out = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=True)
        else:
            out = fn(x, axis=axis, keepdims=True)
        out = out.astype(np.int64)
        return out if attrs["keepdims"] else np.squeeze(out, axis)

    @op.def_compute
    def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
        """The extreme value, then the first (or last) position holding it. A NaN counts as
        the extreme, as in numpy, whether or not the max/min combiner propagates NaN: NaN
        positions get keys that win over the others, and the epilogue folds keys back."""
        x, out, axis = ins[0], outs[0], int(attrs["axis"])
        n, last = x.shape[axis], bool(attrs["select_last_index"])
        top = reduce_stage(x, attrs, (axis,), out.shape, f"{name}.value",
                           rmax if name == "argmax" else rmin, lambda v, o: v)

        def key(*o: E.Var) -> Reduce:
            r = reduce_axis(n, f"{name}.r")
            v = _source(x, attrs, o, {axis: r})
            nan = E.call("isnan", v) if v.dtype.startswith("float") else E.as_expr(False)
            # nothing matching (impossible unless the combiner lost a NaN) stays in range
            if last:  # NaN keys in [n, 2n), extremes in [0, n): the largest key wins
                return rmax(E.select(nan, r + n, E.select(v.eq(top[o]), r, 0)), r)
            return rmin(E.select(nan, r, E.select(v.eq(top[o]), r + n, 2 * n - 1)), r)

        keys = compute(out.shape, key, f"{name}.key")
        return compute(out.shape, lambda *o: E.select(keys[o] >= n, keys[o] - n, keys[o]), name)

    return op


argmax = _register_arg("argmax", np.argmax)
argmin = _register_arg("argmin", np.argmin)

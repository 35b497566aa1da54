"""Reduction ops (sum, mean, max, norms, log-sum-exp...), argmax/argmin and cumsum."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
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
    "reduce_max": lambda x, ax: np.max(x, axis=ax, keepdims=True),
    "reduce_min": lambda x, ax: np.min(x, axis=ax, keepdims=True),
    "reduce_prod": lambda x, ax: np.prod(_wide(x), axis=ax, keepdims=True,
                                         dtype=x.dtype if x.dtype.kind in "iu" else None),
    "reduce_l1": lambda x, ax: _sum(np.abs(_wide(x)), ax),
    "reduce_l2": lambda x, ax: np.sqrt(_sum(np.square(_wide(x)), ax)),
    "reduce_log_sum": lambda x, ax: np.log(_sum(_wide(x), ax)),
    "reduce_log_sum_exp": lambda x, ax: _log_sum_exp(_wide(x), ax),
    "reduce_sum_square": lambda x, ax: _sum(np.square(_wide(x)), ax),
}
UNDEFINED_WHEN_EMPTY = ("reduce_max", "reduce_min")


def _register_reduction(name: str, fn: Callable[[np.ndarray, Axes], np.ndarray]) -> Op:
    op = Op(name, FusionKind.REDUCTION,
            doc="reduce attrs['axes'] (empty: all) and keep them as size 1 if attrs['keepdims']")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        axes = reduced_axes(attrs, x.rank)
        if name in UNDEFINED_WHEN_EMPTY:
            _check_nonempty(x, axes, name)
        return TensorType(reduced_shape(x.shape, axes, bool(attrs["keepdims"])), x.dtype)

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = ins[0]
        axes = reduced_axes(attrs, x.ndim)
        with np.errstate(all="ignore"):
            out = fn(x, axes)
        out = np.asarray(out).astype(x.dtype, copy=False)
        return out if attrs["keepdims"] else out.reshape(reduced_shape(x.shape, axes, False))

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

    return op


argmax = _register_arg("argmax", np.argmax)
argmin = _register_arg("argmin", np.argmin)


# -- cumsum -----------------------------------------------------------------------------------
# a prefix scan: each output needs all earlier inputs, so it fuses like a sort, not a reduction
cumsum = Op("cumsum", FusionKind.OPAQUE,
            doc="running sum along attrs['axis']; attrs exclusive (shift by one) and reverse")


@cumsum.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    axis = int(attrs["axis"])
    if not 0 <= axis < x.rank:
        raise ValueError(f"axis {axis} is not a normalized axis of rank {x.rank}")
    return x


@cumsum.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, axis = ins[0], int(attrs["axis"])
    y = np.flip(x, axis) if attrs["reverse"] else x
    out = np.cumsum(y, axis=axis, dtype=x.dtype)
    if attrs["exclusive"]:
        # shifting rather than subtracting the input keeps float results exact
        pad = [(1, 0) if d == axis else (0, 0) for d in range(out.ndim)]
        out = np.take(np.pad(out, pad), np.arange(out.shape[axis]), axis=axis)
    return np.flip(out, axis) if attrs["reverse"] else out


@cumsum.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return outs[0].size

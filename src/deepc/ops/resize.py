"""Resizing: `resize` (ONNX Resize and Upsample) as separable per-axis interpolation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial, reduce
from operator import add
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.movement import empty_output
from deepc.ops.registry import FusionKind, Op

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")

resize = Op("resize", FusionKind.INJECTIVE, doc="""resize every axis by interpolation; attrs:
- `shape`: the full output shape;
- `scales`: one float per axis, the factor that maps output to input coordinates (given by
  the model, or output/input size when the model gave sizes);
- `roi`: 2*rank floats, all starts then all ends, read by tf_crop_and_resize only;
- `mode` (nearest | linear | cubic), `coordinate_transformation_mode`, `nearest_mode`,
  `cubic_coeff_a`, `exclude_outside`, `extrapolation_value`, `antialias`: as in ONNX Resize-19.
  nearest_mode `simple` is Resize-10 and Upsample: floor when an axis grows, ceil when it
  shrinks.
Axes are resized one after another (interpolation is separable); `source_coord` says how
coordinates are rounded.""")


@resize.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    shape = tuple(int(d) for d in attrs["shape"])  # type: ignore[union-attr]
    if len(shape) != x.rank or len(attrs["scales"]) != x.rank:  # type: ignore[arg-type]
        raise ValueError(f"shape {shape} and scales must have one entry per axis ({x.rank})")
    if len(attrs["roi"]) != 2 * x.rank:  # type: ignore[arg-type]
        raise ValueError(f"roi must have {2 * x.rank} values")
    if any(d < 0 for d in shape) or any(s <= 0 for s in attrs["scales"]):  # type: ignore[union-attr]
        raise ValueError("sizes must be non-negative and scales positive")
    for key, allowed in (("mode", MODES), ("coordinate_transformation_mode", COORDINATE_MODES),
                         ("nearest_mode", NEAREST_MODES)):
        if attrs[key] not in allowed:
            raise ValueError(f"{key} {attrs[key]!r} is not one of {', '.join(allowed)}")
    if any(d == 0 for d in x.shape) and x.shape != shape:
        raise ValueError("an empty input cannot be resized to another shape")
    return TensorType(shape, x.dtype)


class NumpyOps:
    """The functions the formulas below use, on numpy arrays: they compute the reference."""

    floor = staticmethod(np.floor)
    fabs = staticmethod(np.abs)
    round = staticmethod(np.round)
    where = staticmethod(np.where)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)

    @staticmethod
    def cast(x: Any, dtype: str) -> Any:
        return np.asarray(x).astype(dtype)

    @staticmethod
    def const(v: float, dtype: str) -> Any:
        return np.dtype(dtype).type(v)


class ExprOps:
    """The same functions on scalar expressions: they build the compute definition, so the
    compiled kernel performs the reference's float operations in the same order and types."""

    floor = staticmethod(partial(E.call, "floor"))
    fabs = staticmethod(partial(E.call, "fabs"))
    round = staticmethod(partial(E.call, "round"))  # half to even, like np.round
    where = staticmethod(E.select)
    maximum = staticmethod(E.maximum)
    minimum = staticmethod(E.minimum)

    @staticmethod
    def cast(x: E.Expr, dtype: str) -> E.Expr:
        return x.astype(dtype)

    @staticmethod
    def const(v: float, dtype: str) -> E.Expr:
        return E.const(np.dtype(dtype).type(v).item(), dtype)


Ops = type[NumpyOps] | type[ExprOps]


def clamp(xp: Ops, v: Any, lo: float, hi: float) -> Any:
    return xp.minimum(xp.maximum(v, lo), hi)


def source_coord(xp: Ops, o: Any, out_len: int, in_len: int, scale: float,
                 roi: tuple[float, float], mode: str) -> tuple[Any, Any]:
    """Input coordinate (float64) of output index `o` along one axis, and whether it lies
    outside the input, which tf_crop_and_resize fills with the extrapolation value (None for
    other modes). Constant coordinates come back as scalars.

    A scale that is exactly out/in (the model gave sizes) is applied as the integer ratio in
    float64, so ties such as 14.5 are exact; any other scale is a float32 from the model and
    is applied in float32, as onnxruntime does.
    """
    exact = scale == out_len / in_len
    t = "float64" if exact else "float32"
    nt = np.dtype(t).type  # static parts are folded here in the same type

    def k(v: float) -> Any:
        return xp.const(v, t)

    def to_input(v: Any) -> Any:
        return v * k(in_len) / k(out_len) if exact else v / k(scale)

    x, outside = xp.cast(o, t), None
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out_len > 1):
        c = to_input(x + k(0.5)) - k(0.5)
    elif mode == "half_pixel_symmetric":
        offset = nt(in_len) / nt(2) * (nt(1) - nt(out_len) / (nt(scale) * nt(in_len)))
        v = to_input(x + k(0.5)) if exact else (
            xp.cast(x + k(0.5), "float64") / xp.const(nt(scale), "float64"))
        # onnxruntime adds the offset to a float64 coordinate, then rounds to t
        c = xp.cast(xp.const(offset, "float64") + v - 0.5, t)
    elif mode == "align_corners" and out_len > 1:
        c = x * k(in_len - 1) / k(out_len - 1)
    elif mode == "asymmetric":
        c = to_input(x)
    elif mode == "tf_half_pixel_for_nn":
        c = to_input(x + k(0.5))
    elif mode == "tf_crop_and_resize":
        lo, hi = nt(roi[0]), nt(roi[1])
        if out_len > 1:
            c = k(lo * nt(in_len - 1)) + x * k(hi - lo) * k(in_len - 1) / k(out_len - 1)
        else:
            c = k(nt(0.5) * (lo + hi) * nt(in_len - 1))
        outside = (c < 0) | (c > k(in_len - 1))
    else:  # pytorch_half_pixel and align_corners onto one element
        c = k(0)
    return xp.cast(c, "float64"), outside


def nearest_index(xp: Ops, c: Any, in_len: int, rounding: str, shrinks: bool) -> Any:
    base = xp.floor(c)
    frac = c - base
    if rounding == "simple":
        rounding = "ceil" if shrinks else "floor"
    up: Any = 0
    if rounding == "round_prefer_floor":
        up = xp.where(frac > 0.5, 1, 0)
    elif rounding == "round_prefer_ceil":
        up = xp.where(frac >= 0.5, 1, 0)
    elif rounding == "ceil":
        up = xp.where(frac > 0, 1, 0)
    return clamp(xp, xp.cast(base, "int64") + up, 0, in_len - 1)


def _kernel(xp: Ops, mode: str, a: float, t: Any) -> Any:
    t = xp.fabs(t)
    if mode == "linear":
        return xp.maximum(0.0, 1.0 - t)
    inner = ((a + 2) * t - (a + 3)) * t * t + 1
    outer = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return xp.where(t <= 1, inner, xp.where(t < 2, outer, 0.0))


def tap(xp: Ops, c: Any, offset: Any, stretch: float, attrs: Attrs) -> tuple[Any, Any]:
    """Input index floor(c) + offset and its kernel weight (before any normalization)."""
    idx = xp.cast(xp.floor(c), "int64") + offset
    t = xp.cast(idx, "float64") - c
    a = float(attrs["cubic_coeff_a"])  # type: ignore[arg-type]
    return idx, _kernel(xp, str(attrs["mode"]), a, t * stretch if stretch != 1 else t)


def tap_span(scale: float, attrs: Attrs) -> tuple[float, int]:
    """The kernel stretch and its radius in taps. With antialias a shrinking axis stretches
    the kernel by 1/scale (and normalizes it), so every input element contributes."""
    stretch = min(scale, 1.0) if attrs["antialias"] else 1.0
    return stretch, math.ceil((1 if attrs["mode"] == "linear" else 2) / stretch)


def interpolation_taps(c: np.ndarray, in_len: int, scale: float,
                       attrs: Attrs) -> tuple[np.ndarray, np.ndarray]:
    """Input indices [out, taps] and weights [out, taps] of linear or cubic interpolation.
    Taps outside the input repeat the edge element, or with exclude_outside get weight 0 and
    the rest is renormalized."""
    stretch, radius = tap_span(scale, attrs)
    idx, w = tap(NumpyOps, c[:, None], np.arange(-radius, radius + 1)[None, :], stretch, attrs)
    if attrs["antialias"]:
        w = w / w.sum(axis=1, keepdims=True)
    if attrs["exclude_outside"]:
        w = np.where((idx >= 0) & (idx < in_len), w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_len - 1), w


def to_dtype(xp: Ops, y: Any, dtype: str) -> Any:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return xp.cast(clamp(xp, xp.round(y), float(info.min), float(info.max)), dtype)
    return xp.cast(y, dtype)


def _axis_params(attrs: Attrs, axis: int, rank: int) -> tuple[float, tuple[float, float], str]:
    roi = (float(attrs["roi"][axis]), float(attrs["roi"][axis + rank]))  # type: ignore[index]
    return float(attrs["scales"][axis]), roi, str(attrs["coordinate_transformation_mode"])  # type: ignore[index]


def _resize_axis(x: np.ndarray, axis: int, out_len: int, attrs: Attrs) -> np.ndarray:
    rank, in_len = x.ndim, x.shape[axis]
    if out_len == 0 or in_len == 0:
        return np.take(x, np.zeros(out_len, np.int64), axis=axis)
    scale, roi, coord = _axis_params(attrs, axis, rank)
    c, outside = source_coord(NumpyOps, np.arange(out_len), out_len, in_len, scale, roi, coord)
    c = np.broadcast_to(c, (out_len,))
    if attrs["mode"] == "nearest":
        idx = nearest_index(NumpyOps, c, in_len, str(attrs["nearest_mode"]), scale < 1)
        y = np.take(x, idx, axis=axis)
    else:
        idx, w = interpolation_taps(c, in_len, scale, attrs)
        taps = np.take(x.astype(np.float64, copy=False), idx, axis=axis)  # [..., out, k, ...]
        y = (taps * w.reshape(w.shape + (1,) * (rank - axis - 1))).sum(axis=axis + 1)
    if outside is not None and np.any(outside):
        mask = np.broadcast_to(outside, (out_len,)).reshape((out_len,) + (1,) * (rank - axis - 1))
        y = np.where(mask, np.asarray(attrs["extrapolation_value"]), y)
    return y


def _is_identity(x_len: int, out_len: int, axis: int, rank: int, attrs: Attrs) -> bool:
    roi = (attrs["roi"][axis], attrs["roi"][axis + rank])  # type: ignore[index]
    cropping = attrs["coordinate_transformation_mode"] == "tf_crop_and_resize" and roi != (0, 1)
    return x_len == out_len and attrs["scales"][axis] == 1 and not cropping  # type: ignore[index]


@resize.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    y = x
    for axis, out_len in enumerate(attrs["shape"]):  # type: ignore[arg-type]
        if not _is_identity(x.shape[axis], int(out_len), axis, x.ndim, attrs):
            y = _resize_axis(y, axis, int(out_len), attrs)
    return to_dtype(NumpyOps, y, x.dtype.name) if y.dtype != x.dtype else np.ascontiguousarray(y)


# -- compute: one stage per resized axis --------------------------------------------------------
def _resize_axis_te(y: Tensor, axis: int, out_len: int, attrs: Attrs) -> Tensor:
    """`y` resized along `axis`, as the reference does it. Nearest and few-tap interpolation
    are index formulas with the taps unrolled (inlined into the next axis); an antialiased
    shrinking axis has many taps, so it is a reduction over them (materialized, so each axis
    costs only its own taps).

    Weights are normalized (antialias, exclude_outside) once: exclude_outside zeroes the taps
    outside the input first, which cancels the reference's first normalization. Unrolled taps
    divide the weighted sum by the weights' sum instead of dividing each weight: the same value
    up to float64 rounding, in expressions a fraction of the size."""
    in_len, name = y.shape[axis], f"resize_axis{axis}"
    shape = (*y.shape[:axis], out_len, *y.shape[axis + 1:])
    scale, roi, coord = _axis_params(attrs, axis, y.rank)
    extrapolated = E.const(float(attrs["extrapolation_value"]), "float64")  # type: ignore[arg-type]
    exclude = bool(attrs["exclude_outside"])

    def coord_of(o: E.Expr) -> tuple[E.Expr, E.Expr | None]:
        return source_coord(ExprOps, o, out_len, in_len, scale, roi, coord)

    def load(i: Sequence[E.Expr], pos: E.Expr) -> E.Expr:
        return y[(*i[:axis], pos, *i[axis + 1:])]

    def finish(i: Sequence[E.Expr], value: E.Expr) -> E.Expr:
        outside = coord_of(i[axis])[1]
        return value if outside is None else E.select(outside, extrapolated,
                                                      value.astype("float64"))

    if attrs["mode"] == "nearest":
        rounding = str(attrs["nearest_mode"])
        return compute(shape, lambda *i: finish(i, load(i, nearest_index(
            ExprOps, coord_of(i[axis])[0], in_len, rounding, scale < 1))), name)

    stretch, radius = tap_span(scale, attrs)

    def weight(o: E.Expr, offset: Any) -> tuple[E.Expr, E.Expr]:
        idx, w = tap(ExprOps, coord_of(o)[0], offset, stretch, attrs)
        return idx, E.select((idx >= 0) & (idx < in_len), w, 0.0) if exclude else w

    def term(i: Sequence[E.Expr], idx: E.Expr, w: E.Expr) -> E.Expr:
        return w * load(i, clamp(ExprOps, idx, 0, in_len - 1)).astype("float64")

    def divisor(norm: E.Expr) -> E.Expr:  # the sum of the weights, when they are normalized
        return E.select(norm.eq(0.0), 1.0, norm) if exclude else norm

    normalize = bool(attrs["antialias"]) or exclude
    if stretch == 1:
        # the tap at -radius is always 0 when the kernel is not stretched, so it is left out
        def fn(*i: E.Var) -> E.Expr:
            taps = [weight(i[axis], k) for k in range(1 - radius, radius + 1)]
            total = reduce(add, (term(i, idx, w) for idx, w in taps))
            if normalize:
                total = total / divisor(reduce(add, (w for _, w in taps)))
            return finish(i, total)

        return compute(shape, fn, name)
    r, r_norm = reduce_axis(2 * radius + 1, f"{name}.tap"), reduce_axis(2 * radius + 1,
                                                                         f"{name}.norm_tap")
    norm = compute((out_len,), lambda o: rsum(weight(o, r_norm - radius)[1], r_norm),
                   f"{name}_norm")

    def normalized_term(i: Sequence[E.Expr]) -> E.Expr:
        idx, w = weight(i[axis], r - radius)
        return term(i, idx, w / divisor(norm[i[axis]]))

    total = compute(shape, lambda *i: rsum(normalized_term(i), r), name)
    return compute(shape, lambda *i: finish(i, total[i]), f"{name}_fill")


@resize.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, out = ins[0], outs[0]
    assert x is not None
    empty = empty_output(out, "resize")
    if empty is not None:
        return empty
    y = x
    for axis, out_len in enumerate(out.shape):
        if not _is_identity(x.shape[axis], out_len, axis, x.rank, attrs):
            y = _resize_axis_te(y, axis, out_len, attrs)
    if y.dtype != x.dtype:
        return compute(out.shape, lambda *i: to_dtype(ExprOps, y[i], x.dtype), "resize")
    return y if y is not x else compute(out.shape, lambda *i: x[i], "resize")


@resize.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x = ins[0]
    assert x is not None
    taps = {"nearest": 0, "linear": 2, "cubic": 4}[str(attrs["mode"])]
    resized = sum(1 for i, o in zip(x.shape, outs[0].shape) if i != o)
    return 2 * outs[0].size * taps**resized  # multiply-adds of the interpolation weights

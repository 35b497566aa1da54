"""Resizing: `resize` (ONNX Resize and Upsample) as separable per-axis interpolation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
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
Axes are resized one after another (interpolation is separable); `source_coords` says how
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


def source_coords(out_len: int, in_len: int, scale: float, roi: tuple[float, float],
                  mode: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Input coordinate of each output index along one axis, and the out-of-range mask that
    tf_crop_and_resize fills with the extrapolation value (None for other modes).

    A scale that is exactly out/in (the model gave sizes) is applied as the integer ratio in
    float64, so ties such as 14.5 are exact; any other scale is a float32 from the model and
    is applied in float32, as onnxruntime does.
    """
    exact = scale == out_len / in_len
    t = np.float64 if exact else np.float32
    x, half, n_in, n_out = np.arange(out_len, dtype=t), t(0.5), t(in_len), t(out_len)

    def to_input(v: np.ndarray) -> np.ndarray:
        return v * n_in / n_out if exact else v / t(scale)

    outside = None
    if mode == "half_pixel":
        c = to_input(x + half) - half
    elif mode == "half_pixel_symmetric":
        offset = n_in / t(2) * (t(1) - n_out / (t(scale) * n_in))
        # onnxruntime adds the float32 offset to a float64 coordinate here
        c = offset + (to_input(x + half) if exact else (x + 0.5) / np.float64(t(scale))) - 0.5
        c = c.astype(t)
    elif mode == "pytorch_half_pixel":
        c = to_input(x + half) - half if out_len > 1 else np.zeros_like(x)
    elif mode == "align_corners":
        c = x * (n_in - t(1)) / (n_out - t(1)) if out_len > 1 else np.zeros_like(x)
    elif mode == "asymmetric":
        c = to_input(x)
    elif mode == "tf_half_pixel_for_nn":
        c = to_input(x + half)
    else:  # tf_crop_and_resize
        lo, hi = t(roi[0]), t(roi[1])
        if out_len > 1:
            c = lo * (n_in - t(1)) + x * (hi - lo) * (n_in - t(1)) / (n_out - t(1))
        else:
            c = np.full_like(x, half * (lo + hi) * (n_in - t(1)))
        outside = (c < 0) | (c > n_in - t(1))
    return c.astype(np.float64), outside


def nearest_index(c: np.ndarray, in_len: int, rounding: str, shrinks: bool) -> np.ndarray:
    base = np.floor(c)
    frac = c - base
    if rounding == "simple":
        rounding = "ceil" if shrinks else "floor"
    up = {"round_prefer_floor": frac > 0.5, "round_prefer_ceil": frac >= 0.5,
          "floor": np.zeros_like(c, bool), "ceil": frac > 0}[rounding]
    return np.clip(base.astype(np.int64) + up, 0, in_len - 1)


def _kernel(mode: str, a: float, t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    if mode == "linear":
        return np.maximum(0.0, 1.0 - t)
    inner = ((a + 2) * t - (a + 3)) * t * t + 1
    outer = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, inner, np.where(t < 2, outer, 0.0))


def interpolation_taps(c: np.ndarray, in_len: int, scale: float,
                       attrs: Attrs) -> tuple[np.ndarray, np.ndarray]:
    """Input indices [out, taps] and weights [out, taps] of linear or cubic interpolation.

    With antialias a shrinking axis stretches the kernel by 1/scale (and normalizes it), so
    every input element contributes. Taps outside the input repeat the edge element, or
    with exclude_outside get weight 0 and the rest is renormalized.
    """
    mode = str(attrs["mode"])
    stretch = min(scale, 1.0) if attrs["antialias"] else 1.0
    radius = math.ceil((1 if mode == "linear" else 2) / stretch)
    idx = np.floor(c).astype(np.int64)[:, None] + np.arange(-radius, radius + 1)[None, :]
    a = float(attrs["cubic_coeff_a"])  # type: ignore[arg-type]
    w = _kernel(mode, a, (idx - c[:, None]) * stretch)
    if attrs["antialias"]:
        w = w / w.sum(axis=1, keepdims=True)
    inside = (idx >= 0) & (idx < in_len)
    if attrs["exclude_outside"]:
        w = np.where(inside, w, 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_len - 1), w


def _to_dtype(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(y), info.min, info.max).astype(dtype)
    return y.astype(dtype)


def _resize_axis(x: np.ndarray, axis: int, out_len: int, attrs: Attrs) -> np.ndarray:
    rank, in_len = x.ndim, x.shape[axis]
    if out_len == 0 or in_len == 0:
        return np.take(x, np.zeros(out_len, np.int64), axis=axis)
    scale = float(attrs["scales"][axis])  # type: ignore[index]
    roi = (float(attrs["roi"][axis]), float(attrs["roi"][axis + rank]))  # type: ignore[index]
    c, outside = source_coords(out_len, in_len, scale, roi,
                               str(attrs["coordinate_transformation_mode"]))
    if attrs["mode"] == "nearest":
        idx = nearest_index(c, in_len, str(attrs["nearest_mode"]), scale < 1)
        y = np.take(x, idx, axis=axis)
    else:
        idx, w = interpolation_taps(c, in_len, scale, attrs)
        taps = np.take(x.astype(np.float64, copy=False), idx, axis=axis)  # [..., out, k, ...]
        y = (taps * w.reshape(w.shape + (1,) * (rank - axis - 1))).sum(axis=axis + 1)
    if outside is not None and outside.any():
        mask = outside.reshape((out_len,) + (1,) * (rank - axis - 1))
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
    return _to_dtype(y, x.dtype) if y.dtype != x.dtype else np.ascontiguousarray(y)


@resize.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x = ins[0]
    assert x is not None
    taps = {"nearest": 0, "linear": 2, "cubic": 4}[str(attrs["mode"])]
    resized = sum(1 for i, o in zip(x.shape, outs[0].shape) if i != o)
    return 2 * outs[0].size * taps**resized  # multiply-adds of the interpolation weights

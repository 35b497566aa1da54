"""grid_sample: x[N, C, *S] sampled at the normalised positions grid[N, *O, d] (d = len(S),
the last grid entry addressing the first spatial axis, x/y(/z) order) -> out[N, C, *O].

Per spatial axis, a grid value g in [-1, 1] maps to the position v = (g + 1) / 2 * (S - 1)
(align_corners) or ((g + 1) * S - 1) / 2; `nearest` rounds it (half to even). A position
outside the borders ([0, S-1] with align_corners, else [-0.5, S-0.5]) is clamped to [0, S-1]
(padding `border`) or reflected into them (`reflection`). Then the taps around v (1, 2 for
`linear` or 4 for `cubic`, Keys' kernel with A = -0.75) are weighted per axis; a tap index
outside x reads 0 (`zeros`), the nearest edge (`border`) or its reflection (`reflection`),
as onnx's reference does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import all_of

MODES = ("nearest", "linear", "cubic")
PADDINGS = ("zeros", "border", "reflection")
CUBIC_A = -0.75

grid_sample = Op("grid_sample", FusionKind.INJECTIVE,
                 doc="sample x[N,C,*S] at grid[N,*O,len(S)]; attrs mode (nearest, linear, "
                     "cubic), padding_mode (zeros, border, reflection), align_corners")


@grid_sample.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, grid = ins[0], ins[1]
    assert x is not None and grid is not None
    nd = x.rank - 2
    if nd < 1 or grid.rank != nd + 2 or grid.shape[-1] != nd or grid.shape[0] != x.shape[0]:
        raise ValueError(f"grid {grid} does not address the {nd} spatial axes of x {x}")
    if attrs["mode"] not in MODES or attrs["padding_mode"] not in PADDINGS:
        raise ValueError(f"mode {attrs['mode']!r} or padding {attrs['padding_mode']!r} unknown")
    return TensorType((*x.shape[:2], *grid.shape[1:-1]), x.dtype)


def _borders(size: int, align: bool) -> tuple[float, float]:
    return (0.0, size - 1.0) if align else (-0.5, size - 0.5)


def _weights(mode: str, t: Any) -> list[Any]:
    """The tap weights at fraction t (numpy arrays or expressions alike)."""
    if mode == "linear":
        return [1 - t, t]
    a = CUBIC_A

    def far(u: Any) -> Any:  # |u| in [1, 2]
        return ((a * u - 5 * a) * u + 8 * a) * u - 4 * a

    def near(u: Any) -> Any:  # |u| in [0, 1]
        return ((a + 2) * u - (a + 3)) * u * u + 1

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


# -- numpy reference ----------------------------------------------------------------------------
def _np_reflect(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    below, above = v < lo, v > hi
    dx = np.where(below, lo - v, v - hi)
    k = np.floor(dx / span)
    r = dx - k * span
    even = k % 2 == 0
    inside = np.where(below == even, lo + r, hi - r)
    return np.where(below | above, inside, v)


def _np_position(g: np.ndarray, size: int, attrs: Attrs) -> np.ndarray:
    align, padding = bool(attrs["align_corners"]), attrs["padding_mode"]
    v = (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2
    if attrs["mode"] == "nearest":
        v = np.rint(v)
    lo, hi = _borders(size, align)
    if padding == "border":
        v = np.where((v < lo) | (v > hi), np.clip(v, 0, size - 1), v)
    elif padding == "reflection":
        v = _np_reflect(v, lo, hi)
    return v


def _np_taps(v: np.ndarray, size: int, attrs: Attrs) -> list[tuple[np.ndarray, Any, Any]]:
    """(index into x, weight, in-bounds mask) per tap along one axis."""
    if attrs["mode"] == "nearest":
        taps = [(v.astype(np.int64), 1.0)]
    else:
        base = np.floor(v)
        start = 0 if attrs["mode"] == "linear" else -1
        taps = [(base.astype(np.int64) + start + k, w)
                for k, w in enumerate(_weights(attrs["mode"], v - base))]
    out = []
    for j, w in taps:
        valid = (j >= 0) & (j < size)
        if attrs["padding_mode"] == "reflection":
            lo, hi = _borders(size, bool(attrs["align_corners"]))
            j = _np_reflect(j.astype(np.float64), lo, hi).astype(np.int64)
            valid = True
        elif attrs["padding_mode"] == "border":
            valid = True
        out.append((np.clip(j, 0, size - 1), w, valid))
    return out


@grid_sample.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, grid = ins[0], ins[1]
    nd, sizes = x.ndim - 2, x.shape[2:]
    g = grid.astype(np.float64)
    per_axis = [_np_taps(_np_position(g[..., nd - 1 - i], sizes[i], attrs), sizes[i], attrs)
                for i in range(nd)]
    batch = np.arange(x.shape[0]).reshape(-1, *(1,) * (grid.ndim - 2))
    out = np.zeros((*grid.shape[:-1], x.shape[1]), np.float64)
    for combo in itertools.product(*per_axis):
        weight, valid = 1.0, True
        for _, w, ok in combo:
            weight, valid = weight * w, valid & ok
        values = x[(batch, slice(None), *(j for j, _, _ in combo))]  # [N, *O, C]
        out += np.where(np.expand_dims(valid, -1), values * np.expand_dims(weight, -1), 0)
    return np.moveaxis(out, -1, 1).astype(x.dtype)


# -- compute --------------------------------------------------------------------------------
def _reflect(v: E.Expr, lo: float, hi: float) -> E.Expr:
    span = E.const(hi - lo, v.dtype)
    low, high = E.const(lo, v.dtype), E.const(hi, v.dtype)
    below = v < low
    dx = E.select(below, low - v, v - high)
    k = E.call("floor", dx / span)
    r = dx - k * span
    even = (k - E.call("floor", k * 0.5) * 2).eq(E.const(0, v.dtype))
    toward_low = E.select(below, even, ~even)
    return E.select(below | (v > high), E.select(toward_low, low + r, high - r), v)


@grid_sample.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """One stage of positions per spatial axis, then the weighted sum of the taps."""
    x, grid = ins[0], ins[1]
    nd, sizes = x.rank - 2, x.shape[2:]
    mode, padding = attrs["mode"], attrs["padding_mode"]
    align = bool(attrs["align_corners"])
    acc = "float64" if x.dtype == "float64" else "float32"

    def position(i: int) -> Tensor:
        size = sizes[i]

        def body(n: E.Var, *o: E.Var) -> E.Expr:
            g = grid[(n, *o, nd - 1 - i)].astype(acc)
            v = (g + 1) * ((size - 1) / 2) if align else ((g + 1) * size - 1) * 0.5
            if mode == "nearest":
                v = E.call("round", v)
            lo, hi = _borders(size, align)
            if padding == "border":
                outside = (v < E.const(lo, acc)) | (v > E.const(hi, acc))
                clamped = E.minimum(E.maximum(v, E.const(0, acc)), E.const(size - 1, acc))
                v = E.select(outside, clamped, v)
            elif padding == "reflection":
                v = _reflect(v, lo, hi)
            return v

        return compute(grid.shape[:-1], body, f"grid_sample_pos{i}")

    positions = [position(i) for i in range(nd)]

    def taps(i: int, v: E.Expr) -> list[tuple[E.Expr, E.Expr | None, E.Expr | None]]:
        size = sizes[i]
        if mode == "nearest":
            raw: list[tuple[E.Expr, Any]] = [(v.astype("int64"), None)]
        else:
            base = E.call("floor", v)
            start = 0 if mode == "linear" else -1
            raw = [(base.astype("int64") + (start + k), w)
                   for k, w in enumerate(_weights(mode, v - base))]
        out = []
        for j, w in raw:
            valid = None
            if padding == "zeros":
                valid = (j >= 0) & (j < size)
            elif padding == "reflection":
                lo, hi = _borders(size, align)
                j = _reflect(j.astype(acc), lo, hi).astype("int64")
            out.append((E.minimum(E.maximum(j, E.as_expr(0, j)), E.as_expr(size - 1, j)), w,
                        valid))
        return out

    def body(n: E.Var, c: E.Var, *o: E.Var) -> E.Expr:
        per_axis = [taps(i, positions[i][(n, *o)]) for i in range(nd)]
        total: E.Expr | None = None
        for combo in itertools.product(*per_axis):
            term = x[(n, c, *(j for j, _, _ in combo))].astype(acc)
            valid = all_of([ok for _, _, ok in combo if ok is not None])
            for _, w, _ in combo:
                term = term if w is None else term * w
            if valid is not None:
                term = E.select(valid, term, E.const(0, acc))
            total = term if total is None else total + term
        assert total is not None
        return total.astype(outs[0].dtype)

    return compute(outs[0].shape, body, "grid_sample")


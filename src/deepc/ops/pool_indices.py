"""max_pool_indices: where each max_pool window's maximum sits, as MaxPool's Indices output.

The flat int64 index into x[N, C, *S] (row-major, or with the spatial axes column-major when
attrs['storage_order'] is 1) of the first tap, in window order, holding the window's
maximum; taps in the padding never count. Attrs as max_pool's, plus storage_order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rmax, rmin
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import all_of, spatial_attrs, window_out_shape

max_pool_indices = Op("max_pool_indices", FusionKind.OPAQUE,
                      doc="flat index of each max_pool window's first maximum; max_pool's "
                          "attrs and storage_order")


@max_pool_indices.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    out = window_out_shape(x.shape[2:], tuple(attrs["kernel_shape"]), attrs,
                           bool(attrs.get("ceil_mode", 0)))
    return TensorType((*x.shape[:2], *out), "int64")


def _flat(n: Any, c: Any, pos: Sequence[Any], shape: Sequence[int], column_major: bool) -> Any:
    sizes = list(shape[2:])
    order = list(range(len(sizes)))[::-1] if column_major else list(range(len(sizes)))
    flat = n * shape[1] + c
    for i in order:
        flat = flat * sizes[i] + pos[i]
    return flat


@max_pool_indices.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    nd, kernel = x.ndim - 2, tuple(attrs["kernel_shape"])
    strides, pads, dilations = spatial_attrs(attrs, nd)
    out = window_out_shape(x.shape[2:], kernel, attrs, bool(attrs.get("ceil_mode", 0)))
    result = np.zeros((*x.shape[:2], *out), np.int64)
    for n, c, *o in np.ndindex(*result.shape):
        best, where = None, None
        for tap in np.ndindex(*kernel):
            pos = [o[i] * strides[i] + tap[i] * dilations[i] - pads[i] for i in range(nd)]
            if all(0 <= p < s for p, s in zip(pos, x.shape[2:])):
                v = x[(n, c, *pos)]
                if best is None or v > best:
                    best, where = v, pos
        result[(n, c, *o)] = _flat(n, c, where or [0] * nd, x.shape,
                                   bool(attrs.get("storage_order", 0)))
    return result


@max_pool_indices.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """The window maximum, then the smallest tap number (window order) that holds it."""
    x = ins[0]
    nd, kernel = x.rank - 2, tuple(attrs["kernel_shape"])
    strides, pads, dilations = spatial_attrs(attrs, nd)
    count = math.prod(kernel)

    def taps(name: str) -> list[Any]:
        return [reduce_axis(k, f"{name}.k{i}") for i, k in enumerate(kernel)]

    def at(o: Sequence[E.Expr], tap: Sequence[E.Expr]) -> tuple[list[E.Expr], E.Expr | None]:
        pos = [o[i] * strides[i] + tap[i] * dilations[i] - pads[i] for i in range(nd)]
        inside = all_of([c for i, p in enumerate(pos) for c in (p >= 0, p < x.shape[2 + i])])
        return pos, inside

    def load(n: E.Expr, c: E.Expr, pos: list[E.Expr], inside: E.Expr | None) -> E.Expr:
        clamped = [E.minimum(E.maximum(p, E.as_expr(0, p)), E.as_expr(x.shape[2 + i] - 1, p))
                   for i, p in enumerate(pos)]
        v = x[(n, c, *clamped)]
        low = -np.inf if x.dtype.startswith("float") else np.iinfo(x.dtype).min
        return v if inside is None else E.select(inside, v, E.as_expr(low, v))

    def top_body(n: E.Var, c: E.Var, *o: E.Var) -> E.Expr:
        k = taps("mpi_top")
        return rmax(load(n, c, *at(o, k)), k)

    top = compute(outs[0].shape, top_body, "max_pool_indices.top")

    def first_body(n: E.Var, c: E.Var, *o: E.Var) -> E.Expr:
        k = taps("mpi_first")
        pos, inside = at(o, k)
        number = k[0]
        for i in range(1, nd):
            number = number * kernel[i] + k[i]
        hit = load(n, c, pos, inside).eq(top[(n, c, *o)])
        hit = hit if inside is None else hit & inside
        number = number.astype("int64")
        return rmin(E.select(hit, number, E.as_expr(count, number)), k)

    first = compute(outs[0].shape, first_body, "max_pool_indices.first")

    def body(n: E.Var, c: E.Var, *o: E.Var) -> E.Expr:
        t = E.minimum(first[(n, c, *o)], E.as_expr(count - 1, first[(n, c, *o)]))
        tap = []
        for i in reversed(range(nd)):
            tap.append(t % kernel[i])
            t = t // kernel[i]
        tap.reverse()
        pos = [o[i] * strides[i] + tap[i] * dilations[i] - pads[i] for i in range(nd)]
        return _flat(n.astype("int64"), c.astype("int64"), pos, x.shape,
                     bool(attrs.get("storage_order", 0))).astype("int64")

    return compute(outs[0].shape, body, "max_pool_indices")

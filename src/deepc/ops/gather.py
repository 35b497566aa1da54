"""Gathers: gather, gather_elements and gather_nd (negative indices wrap, invalid ones are
clamped in the compiled code; the references raise). Ids that come straight from a model
input are range-checked before each run, as onnxruntime refuses them: the bound is recorded
in the bundle (runtime/inputs.input_bounds) and checked by runtime/inputs.check_index_ranges,
so the kernels keep their branch-free clamp."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.indices import (
    check_axis,
    check_indices,
    clamped_index,
    element_index,
    input_types,
    wrap_indices,
)
from deepc.ops.registry import FusionKind, Op

# -- gather -----------------------------------------------------------------------------------
gather = Op("gather", FusionKind.INJECTIVE,
            doc="take slices of data along attrs['axis'] at indices (negative ones wrap)")


@gather.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = input_types(ins, 2)
    check_indices(idx)
    axis = check_axis(int(attrs["axis"]), data.rank)
    return TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)


@gather.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    axis = int(attrs["axis"])
    return np.take(data, wrap_indices(idx, data.shape[axis]), axis=axis)


@gather.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx = ins[0], ins[1]
    axis, q = int(attrs["axis"]), idx.rank

    def fn(*o: E.Var) -> E.Expr:
        pos = clamped_index(idx[o[axis:axis + q]], data.shape[axis])
        return data[(*o[:axis], pos, *o[axis + q:])]

    return compute(outs[0].shape, fn, "gather")


# -- gather_elements --------------------------------------------------------------------------
gather_elements = Op("gather_elements", FusionKind.INJECTIVE,
                     doc="out[i] = data[i with axis component replaced by indices[i]]")


@gather_elements.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = input_types(ins, 2)
    check_indices(idx)
    axis = check_axis(int(attrs["axis"]), data.rank)
    if idx.rank != data.rank:
        raise ValueError(f"indices have rank {idx.rank}, data rank {data.rank}; they must match")
    if any(i > d for k, (i, d) in enumerate(zip(idx.shape, data.shape)) if k != axis):
        raise ValueError("indices are larger than data outside the gather axis")
    return TensorType(idx.shape, data.dtype)


@gather_elements.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    axis = int(attrs["axis"])
    return data[element_index(idx, axis, data.shape[axis])]


@gather_elements.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx, axis = ins[0], ins[1], int(attrs["axis"])
    return compute(outs[0].shape, lambda *o: data[
        (*o[:axis], clamped_index(idx[o], data.shape[axis]), *o[axis + 1:])], "gather_elements")


# -- gather_nd --------------------------------------------------------------------------------
gather_nd = Op("gather_nd", FusionKind.INJECTIVE,
               doc="index data by the last axis of indices (k coordinates), after batch_dims")


@gather_nd.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = input_types(ins, 2)
    check_indices(idx)
    b = int(attrs["batch_dims"])
    if idx.rank < 1 or not 0 <= b < min(data.rank, idx.rank):
        raise ValueError(f"batch_dims {b} must be below both ranks ({data.rank}, {idx.rank})")
    if data.shape[:b] != idx.shape[:b]:
        raise ValueError(f"batch dimensions differ: {data.shape[:b]} vs {idx.shape[:b]}")
    k = idx.shape[-1]
    if not 1 <= k <= data.rank - b:
        raise ValueError(f"indices' last dimension {k} must be in [1, {data.rank - b}]")
    return TensorType(idx.shape[:-1] + data.shape[b + k:], data.dtype)


@gather_nd.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    b = int(attrs["batch_dims"])
    k = idx.shape[-1]
    batch = prod(data.shape[:b])
    flat_data = data.reshape((batch, *data.shape[b:]))
    flat_idx = idx.reshape((batch, prod(idx.shape[b:-1]), k))
    where = (np.broadcast_to(np.arange(batch)[:, None], flat_idx.shape[:2]),
             *(wrap_indices(flat_idx[..., j], data.shape[b + j]) for j in range(k)))
    return flat_data[where].reshape(idx.shape[:-1] + data.shape[b + k:])


@gather_nd.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx = ins[0], ins[1]
    b, q, k = int(attrs["batch_dims"]), idx.rank, idx.shape[-1]

    def fn(*o: E.Var) -> E.Expr:
        coords = (clamped_index(idx[(*o[:q - 1], j)], data.shape[b + j]) for j in range(k))
        return data[(*o[:b], *coords, *o[q - 1:])]

    return compute(outs[0].shape, fn, "gather_nd")

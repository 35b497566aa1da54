"""one_hot: a new axis of depth positions, on_value at each index and off_value elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType, np_dtype
from deepc.ops.indices import check_axis, input_types, wrap_index
from deepc.ops.registry import FusionKind, Op

one_hot = Op("one_hot", FusionKind.INJECTIVE,
             doc="a new axis of size depth at attrs['axis']: on_value where it equals the "
                 "index (negative ones wrap), off_value elsewhere; output dtype attrs['dtype']")


@one_hot.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    (idx,) = input_types(ins, 1)
    if idx.dtype in ("bool", "string"):
        raise ValueError(f"indices must be numeric, not {idx.dtype}")
    axis = check_axis(int(attrs["axis"]), idx.rank + 1)
    depth = int(attrs["depth"])
    if depth < 0:
        raise ValueError(f"depth {depth} is negative")
    return TensorType((*idx.shape[:axis], depth, *idx.shape[axis:]), str(attrs["dtype"]))


@one_hot.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    axis, depth = int(attrs["axis"]), int(attrs["depth"])
    # fractional indices are truncated, as onnxruntime casts them to int64
    idx = np.trunc(ins[0]) if ins[0].dtype.kind == "f" else ins[0]
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)  # out-of-range ones match nothing: all off
    positions = np.arange(depth).reshape([-1 if d == axis else 1 for d in range(idx.ndim + 1)])
    hot = np.expand_dims(idx, axis) == positions
    dtype = np_dtype(str(attrs["dtype"]))
    on, off = np.asarray(attrs["on_value"], dtype), np.asarray(attrs["off_value"], dtype)
    return np.where(hot, on, off)


@one_hot.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    idx = ins[0]
    axis, depth, dtype = int(attrs["axis"]), int(attrs["depth"]), outs[0].dtype
    on, off = E.const(attrs["on_value"], dtype), E.const(attrs["off_value"], dtype)

    def fn(*o: E.Var) -> E.Expr:
        # a float index truncates toward zero in the cast, as in the reference
        hot = wrap_index(idx[(*o[:axis], *o[axis + 1:])], depth).eq(o[axis])
        return E.select(hot, on, off)

    return compute(outs[0].shape, fn, "one_hot")

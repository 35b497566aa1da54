"""ONNX ops known at compile time (Shape, Size, Constant, Range, EyeLike...) to constants."""

from __future__ import annotations

from math import prod
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.frontends.onnx_ops.shape import const_ints

MAX_CONSTANT_BYTES = 64 << 20  # larger generated constants would bloat params.bin


def _add(b: GraphBuilder, n: OnnxNode, array: np.ndarray) -> None:
    if array.nbytes > MAX_CONSTANT_BYTES:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): its output would be a "
                              f"{array.nbytes >> 20} MiB constant; deepc generates at most "
                              f"{MAX_CONSTANT_BYTES >> 20} MiB")
    b.add_constant(array, name=n.outputs[0])


@converter("Shape")
def shape(b: GraphBuilder, n: OnnxNode) -> None:
    """Shapes are static, so Shape is a constant; `start`/`end` (opset 15) clamp like Slice."""
    dims = b.type(n.inputs[0]).shape
    rank = len(dims)
    start, end = int(n.attr("start", 0)), int(n.attr("end", rank))
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    _add(b, n, np.array(dims[start:end], dtype=np.int64))


@converter("Size")
def size(b: GraphBuilder, n: OnnxNode) -> None:
    _add(b, n, np.array(b.type(n.inputs[0]).size, dtype=np.int64))


def sparse_to_dense(sp: onnx.SparseTensorProto) -> np.ndarray:
    """Indices are either linear ([NNZ]) or coordinates ([NNZ, rank])."""
    values = numpy_helper.to_array(sp.values)
    dims = tuple(sp.dims)
    dense = np.zeros(prod(dims), dtype=values.dtype)
    if values.size:
        idx = numpy_helper.to_array(sp.indices).astype(np.int64)
        flat = idx if idx.ndim == 1 else np.ravel_multi_index(tuple(idx.T), dims)
        dense[flat] = values
    return dense.reshape(dims)


CONSTANT_FORMS: dict[str, Any] = {
    "value": lambda v: np.asarray(v),
    "sparse_value": sparse_to_dense,
    "value_float": lambda v: np.array(v, np.float32),
    "value_floats": lambda v: np.array(v, np.float32).reshape(-1),
    "value_int": lambda v: np.array(v, np.int64),
    "value_ints": lambda v: np.array(v, np.int64).reshape(-1),
    "value_string": lambda v: np.array(v, dtype=object),
    "value_strings": lambda v: np.array(list(v), dtype=object).reshape(-1),
}


@converter("Constant")
def constant(b: GraphBuilder, n: OnnxNode) -> None:
    forms = [k for k in CONSTANT_FORMS if k in n.attrs]
    if len(forms) != 1:
        raise ConversionError(f"node {n.name!r} (Constant): needs exactly one value attribute, "
                              f"has {forms or 'none'}")
    b.add_constant(CONSTANT_FORMS[forms[0]](n.attrs[forms[0]]), name=n.outputs[0])


@converter("ConstantOfShape")
def constant_of_shape(b: GraphBuilder, n: OnnxNode) -> None:
    """A broadcast of the one-element `value`: the builder folds it into a constant when the
    output is small; a large one stays a `broadcast_to` instead of bloating the weights."""
    dims = const_ints(b, n.inputs[0], "the output shape", n)
    value = n.attr("value")
    value = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(())
    b.emit("broadcast_to", [b.add_constant(value)], {"shape": tuple(dims)},
           outputs=n.outputs, name=n.name)


@converter("Range")
def range_(b: GraphBuilder, n: OnnxNode) -> None:
    """output[i] = start + i * delta for i < max(ceil((limit - start) / delta), 0)."""
    start, limit, delta = (b.require_const(v, "Range's start, limit and delta", n.name)
                           .reshape(()) for v in n.inputs[:3])
    dtype = start.dtype
    if np.issubdtype(dtype, np.integer):
        if int(delta) == 0:
            raise ConversionError(f"node {n.name!r} (Range): delta is 0")
        count = max(-((int(start) - int(limit)) // int(delta)), 0)
    else:
        count = max(int(np.ceil((limit - start) / delta)), 0)
    _add(b, n, (start + np.arange(count, dtype=dtype) * delta).astype(dtype))


@converter("EyeLike")
def eye_like(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    if x.rank != 2:
        raise ConversionError(f"node {n.name!r} (EyeLike): input must be 2-d, is {x}")
    to = n.attr("dtype")
    dtype = x.dtype if to is None else helper.tensor_dtype_to_np_dtype(to)
    _add(b, n, np.eye(x.shape[0], x.shape[1], k=int(n.attr("k", 0)), dtype=dtype))

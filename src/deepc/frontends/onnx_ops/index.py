"""ONNX indexing ops: Gather*, Scatter*, OneHot, Trilu, Compress (and NonZero when constant),
ReverseSequence and TensorScatter."""

from __future__ import annotations

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ir.types import dtype_name
from deepc.ops.common import normalize_axis


def _scalar(value: np.ndarray) -> int:
    return int(np.asarray(value).reshape(-1)[0])


@converter("Gather")
def gather(b: GraphBuilder, n: OnnxNode) -> None:
    data, idx = n.inputs[:2]
    axis = normalize_axis(n.attr("axis", 0), b.type(data).rank)
    b.emit("gather", [data, idx], {"axis": axis}, outputs=n.outputs, name=n.name)


@converter("GatherElements")
def gather_elements(b: GraphBuilder, n: OnnxNode) -> None:
    data, idx = n.inputs[:2]
    axis = normalize_axis(n.attr("axis", 0), b.type(data).rank)
    b.emit("gather_elements", [data, idx], {"axis": axis}, outputs=n.outputs, name=n.name)


@converter("GatherND")
def gather_nd(b: GraphBuilder, n: OnnxNode) -> None:
    b.emit("gather_nd", n.inputs[:2], {"batch_dims": n.attr("batch_dims", 0)},
           outputs=n.outputs, name=n.name)


@converter("ScatterElements", "Scatter")
def scatter_elements(b: GraphBuilder, n: OnnxNode) -> None:
    """Scatter (opsets 9-10, deprecated in 11) is ScatterElements without a reduction."""
    data = n.inputs[0]
    attrs = {"axis": normalize_axis(n.attr("axis", 0), b.type(data).rank),
             "reduction": n.attr("reduction", "none")}
    b.emit("scatter_elements", n.inputs[:3], attrs, outputs=n.outputs, name=n.name)


@converter("ScatterND")
def scatter_nd(b: GraphBuilder, n: OnnxNode) -> None:
    b.emit("scatter_nd", n.inputs[:3], {"reduction": n.attr("reduction", "none")},
           outputs=n.outputs, name=n.name)


@converter("OneHot")
def one_hot(b: GraphBuilder, n: OnnxNode) -> None:
    """Depth fixes the output shape, so it must be constant. Constant [off, on] values become
    attributes; values computed at run time select through `where` on a boolean one_hot."""
    idx, depth_name, values = n.inputs[:3]
    depth = _scalar(b.require_const(depth_name, "OneHot depth", n.name))
    attrs = {"axis": normalize_axis(n.attr("axis", -1), b.type(idx).rank + 1), "depth": depth}
    pair = b.const(values)
    if pair is not None:
        off, on = np.asarray(pair).reshape(-1)[:2].tolist()
        attrs.update(on_value=on, off_value=off, dtype=dtype_name(pair.dtype))
        b.emit("one_hot", [idx], attrs, outputs=n.outputs, name=n.name)
        return
    hot = b.emit1("one_hot", [idx], {**attrs, "on_value": True, "off_value": False,
                                     "dtype": "bool"}, name=n.name)
    off, on = (b.emit1("gather", [values, b.add_constant(np.int64(i))], {"axis": 0}, name=n.name)
               for i in (0, 1))
    b.emit("where", [hot, on, off], outputs=n.outputs, name=n.name)


@converter("Trilu")
def trilu(b: GraphBuilder, n: OnnxNode) -> None:
    k = _scalar(b.require_const(n.input(1), "Trilu k", n.name)) if n.input(1) else 0
    b.emit("trilu", n.inputs[:1], {"upper": int(n.attr("upper", 1)), "k": k},
           outputs=n.outputs, name=n.name)


@converter("Compress")
def compress(b: GraphBuilder, n: OnnxNode) -> None:
    """A constant condition is a gather of its true positions (positions past its end count as
    false); without an axis, a gather_nd of the flattened positions' coordinates."""
    data, cond = n.inputs[:2]
    keep = np.flatnonzero(b.require_const(cond, "Compress condition (it sets the output "
                                                "shape)", n.name))
    shape = b.type(data).shape
    axis = n.attr("axis")
    extent = int(np.prod(shape)) if axis is None else shape[normalize_axis(axis, len(shape))]
    if keep.size and keep[-1] >= extent:
        raise ConversionError(f"node {n.name!r} (Compress): the condition selects position "
                              f"{keep[-1]}, past the end of an extent of {extent}")
    if axis is None:
        coords = np.stack(np.unravel_index(keep, shape), axis=-1).astype(np.int64)
        b.emit("gather_nd", [data, b.add_constant(coords)], {"batch_dims": 0},
               outputs=n.outputs, name=n.name)
        return
    axis = normalize_axis(axis, len(shape))
    b.emit("gather", [data, b.add_constant(keep.astype(np.int64))], {"axis": axis},
           outputs=n.outputs, name=n.name)


@converter("NonZero")
def non_zero(b: GraphBuilder, n: OnnxNode) -> None:
    """NonZero's output shape depends on the data: only a constant input can be translated."""
    x = b.const(n.inputs[0])
    if x is None:
        raise ConversionError(
            f"node {n.name!r} (NonZero): its output shape depends on run-time values, which "
            "deepc's static shapes cannot express; make its input constant or remove the op")
    x = np.atleast_1d(x)
    b.add_constant(np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1),
                   name=n.outputs[0])


@converter("ReverseSequence")
def reverse_sequence(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {"batch_axis": int(n.attr("batch_axis", 1)), "time_axis": int(n.attr("time_axis", 0))}
    b.emit("reverse_sequence", n.inputs[:2], attrs, outputs=n.outputs, name=n.name)


@converter("TensorScatter")
def tensor_scatter(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {"axis": normalize_axis(int(n.attr("axis", -2)), b.type(n.inputs[0]).rank),
             "circular": int(n.attr("mode", "linear") == "circular")}
    b.emit("tensor_scatter", [i for i in n.inputs[:3] if i], attrs, outputs=n.outputs,
           name=n.name)

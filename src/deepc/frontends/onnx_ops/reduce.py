"""ONNX reductions (Reduce*), ArgMax/ArgMin and CumSum/CumProd, with axes resolved to attributes."""

from __future__ import annotations

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axes, normalize_axis

# ONNX op -> (deepc op, first opset where `axes` is an input rather than an attribute)
REDUCTIONS = {
    "ReduceSum": ("reduce_sum", 13),
    "ReduceMean": ("reduce_mean", 18),
    "ReduceMax": ("reduce_max", 18),
    "ReduceMin": ("reduce_min", 18),
    "ReduceProd": ("reduce_prod", 18),
    "ReduceL1": ("reduce_l1", 18),
    "ReduceL2": ("reduce_l2", 18),
    "ReduceLogSum": ("reduce_log_sum", 18),
    "ReduceLogSumExp": ("reduce_log_sum_exp", 18),
    "ReduceSumSquare": ("reduce_sum_square", 18),
}


def reduction_axes(b: GraphBuilder, n: OnnxNode, axes_input_since: int) -> tuple[int, ...] | None:
    """The normalized axes to reduce (all of them when none are given), or None when the node
    is a no-op: `noop_with_empty_axes` set and no axes given."""
    rank = b.type(n.inputs[0]).rank
    if n.opset < axes_input_since:
        axes = n.attr("axes") or ()
    elif n.input(1):
        axes = b.require_const(n.input(1), "reduction axes", n.name).reshape(-1).tolist()
    else:
        axes = ()
    if not axes:
        return None if n.attr("noop_with_empty_axes", 0) else tuple(range(rank))
    return normalize_axes(axes, rank)


def _reduce(b: GraphBuilder, n: OnnxNode) -> None:
    op, since = REDUCTIONS[n.op_type]
    axes = reduction_axes(b, n, since)
    if axes is None:
        b.emit("identity", n.inputs[:1], outputs=n.outputs, name=n.name)
        return
    b.emit(op, n.inputs[:1], {"axes": axes, "keepdims": int(n.attr("keepdims", 1))},
           outputs=n.outputs, name=n.name)


for _onnx in REDUCTIONS:
    converter(_onnx)(_reduce)


@converter("ArgMax", "ArgMin")
def arg_extreme(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {"axis": normalize_axis(n.attr("axis", 0), b.type(n.inputs[0]).rank),
             "keepdims": int(n.attr("keepdims", 1)),
             "select_last_index": int(n.attr("select_last_index", 0))}
    op = "argmax" if n.op_type == "ArgMax" else "argmin"
    b.emit(op, n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("CumSum", "CumProd")
def scan(b: GraphBuilder, n: OnnxNode) -> None:
    axis = b.require_const(n.inputs[1], f"{n.op_type} axis", n.name)
    attrs = {"axis": normalize_axis(int(np.asarray(axis).reshape(-1)[0]),
                                    b.type(n.inputs[0]).rank),
             "exclusive": int(n.attr("exclusive", 0)), "reverse": int(n.attr("reverse", 0))}
    op = {"CumSum": "cumsum", "CumProd": "cumprod"}[n.op_type]
    b.emit(op, n.inputs[:1], attrs, outputs=n.outputs, name=n.name)

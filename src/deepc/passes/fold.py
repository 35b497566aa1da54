"""Constant folding: nodes whose inputs are all constants become constants (op references).

The frontend already folds small shape arithmetic while importing; this pass folds whatever
is left, weight transforms included, up to `ctx.fold_max_bytes` per node. A node whose result
outgrows its inputs (broadcasting a scalar to a big weight, tiling) stays a node once the
result passes `ctx.fold_growth_max_bytes`: computing it at run time is cheaper than storing
it. Nodes producing graph outputs stay nodes (outputs are node outputs), and a result equal
to one of the node's inputs (identity, same-shape reshape) reuses that constant.
"""

from __future__ import annotations

import numpy as np

from deepc.errors import VerifyError
from deepc.ir.graph import Graph, Node
from deepc.ir.types import TensorType, np_dtype
from deepc.ops import get_op
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.rewriter import Rewriter, rewrite, same_bytes


def foldable(rw: Rewriter, node: Node, ctx: PassContext) -> bool:
    inputs = [i for i in node.inputs if i]
    if not inputs or not all(i in rw.constants for i in inputs):
        return False
    outs = [rw.types[o] for o in node.outputs if o]
    if any(o in rw.outputs for o in node.outputs) or any(t.dtype == "bfloat16" for t in outs):
        return False
    out_bytes = sum(t.nbytes for t in outs)
    in_bytes = sum(rw.types[i].nbytes for i in inputs)
    return out_bytes <= ctx.fold_max_bytes and (
        out_bytes <= ctx.fold_growth_max_bytes or out_bytes <= in_bytes)


def as_type(value: np.ndarray, ty: TensorType, node: Node) -> np.ndarray:
    """The reference's result in the node's recorded dtype (references follow numpy's
    promotion in places); a shape that differs is a bug in the op's rules."""
    array = np.asarray(value)
    if ty.dtype != "string":
        array = array.astype(np_dtype(ty.dtype), copy=False)
    if TensorType.of(array) != ty:
        raise VerifyError(f"node {node.name or node.op!r} ({node.op}): the reference gives "
                          f"{TensorType.of(array)}, the type rule {ty}")
    return array


def same_constant(rw: Rewriter, node: Node, value: np.ndarray) -> str | None:
    """An input constant with the same type and bytes as `value`, if any."""
    ty = TensorType.of(value)
    for i in node.inputs:
        if i and rw.types[i] == ty and same_bytes(rw.constants[i], value):
            return i
    return None


@register_pass("fold")
def fold(graph: Graph, ctx: PassContext) -> Graph:
    def visit(rw: Rewriter, node: Node) -> bool:
        if not foldable(rw, node, ctx):
            return False
        op = get_op(node.op)
        try:
            values = op.evaluate([rw.constants[i] if i else None for i in node.inputs],
                                 node.attrs)
        except NotImplementedError:  # no reference: the op runs only compiled
            return False
        rw.drop(node)
        for out, value in zip(node.outputs, values):
            if not out:
                continue
            value = as_type(value, rw.types[out], node)
            same = same_constant(rw, node, value)
            if same is not None:
                rw.alias_value(out, same)
            else:
                rw.set_constant(out, value)
        return True

    return rewrite(graph, visit)[0]

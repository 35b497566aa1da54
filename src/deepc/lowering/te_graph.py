"""Graph nodes to tensor expressions, through each op's compute definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from deepc.errors import DeepcError
from deepc.ir.graph import Graph, Node
from deepc.ir.tensor import Tensor, placeholder
from deepc.ir.types import TensorType
from deepc.ops import get_op


class NoComputeError(DeepcError):
    """An op has a reference but no compute definition yet, so it cannot be compiled."""


def node_compute(node: Node, in_tensors: Sequence[Tensor | None],
                 out_types: Sequence[TensorType | None]) -> list[Tensor]:
    """The output tensors of one node given tensors for its inputs.

    `out_types` has one entry per node output, None where the output is omitted; the compute
    returns either one tensor per output or one per present output. The result has one
    tensor per present output, in order.
    """
    op = get_op(node.op)
    if op.compute is None:
        raise NoComputeError(f"op {node.op!r} (node {node.name!r}) has no compute definition "
                             "yet, so it cannot be compiled")
    outs = op.compute(list(in_tensors), node.attrs, list(out_types))
    outs = [outs] if isinstance(outs, Tensor) else list(outs)
    present = [ty for ty in out_types if ty is not None]
    if len(outs) == len(out_types) and len(present) != len(out_types):
        outs = [t for t, ty in zip(outs, out_types) if ty is not None]
    for t, ty in zip(outs, present):
        if t.shape != ty.shape or t.dtype != ty.dtype:
            raise DeepcError(f"op {node.op!r}: compute gives {t.dtype}{list(t.shape)} but the "
                             f"type rule says {ty}")
    return outs


def node_outputs(graph: Graph, node: Node, ins: Sequence[Tensor | None]) -> dict[str, Tensor]:
    """Tensors of a node's present outputs, by value name."""
    types = [graph.types[o] if o else None for o in node.outputs]
    outs = node_compute(node, ins, types)
    return dict(zip([o for o in node.outputs if o], outs))


def node_placeholders(graph: Graph, node: Node) -> list[Tensor | None]:
    return [placeholder(graph.types[i].shape, graph.types[i].dtype, _safe(i)) if i else None
            for i in node.inputs]


def _safe(name: str) -> str:
    return name.replace("/", "_").replace(":", "_").replace(".", "_") or "t"


def run_graph_te(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a graph node by node through compute definitions and the tensor-expression
    evaluator: the check that compute definitions agree with the numpy references."""
    from deepc.ir.tensor_eval import evaluate
    from deepc.ops.interpreter import check_inputs

    values: dict[str, np.ndarray] = dict(graph.constants)
    values.update(check_inputs(graph, inputs))
    for node in graph.nodes:
        ins = node_placeholders(graph, node)
        outs = node_outputs(graph, node, ins)
        feeds = {t: values[name] for t, name in zip(ins, node.inputs) if t is not None}
        results = evaluate(list(outs.values()), feeds)
        values.update(zip(outs, results))
    return {name: values[name] for name in graph.outputs}

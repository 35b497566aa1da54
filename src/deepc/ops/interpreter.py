"""The graph interpreter: runs a graph IR with each op's numpy reference (the executable spec)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepc.errors import InputError, ShapeError
from deepc.ir.graph import Graph
from deepc.ir.types import np_dtype
from deepc.ops import get_op


def check_inputs(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs by name, converted to the declared dtype; shapes must match exactly."""
    missing = [n for n in graph.inputs if n not in inputs]
    if missing:
        raise InputError(f"missing model input(s): {', '.join(missing)} — "
                         f"the model takes {', '.join(graph.inputs)}")
    unknown = sorted(set(inputs) - set(graph.inputs))
    if unknown:
        raise InputError(f"unknown model input(s): {', '.join(unknown)} — "
                         f"the model takes {', '.join(graph.inputs)}")
    out = {}
    for name in graph.inputs:
        ty = graph.types[name]
        arr = np.asarray(inputs[name])
        if tuple(arr.shape) != ty.shape:
            raise ShapeError(f"input {name!r} has shape {'x'.join(map(str, arr.shape))}, the "
                             f"model expects {ty} — pass --input-shape to compile for another")
        out[name] = arr.astype(np_dtype(ty.dtype), copy=False)
    return out


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate every node with its numpy reference; returns the graph outputs by name."""
    values = run_graph_values(graph, inputs)
    return {name: values[name] for name in graph.outputs}


def run_graph_values(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the graph (constants, inputs, each node's outputs) by name."""
    values: dict[str, np.ndarray] = dict(graph.constants)
    values.update(check_inputs(graph, inputs))
    for node in graph.nodes:
        op = get_op(node.op)
        args = [values[i] if i else None for i in node.inputs]
        results = op.evaluate(args, node.attrs)
        for name, value in zip(node.outputs, results):
            if name:
                values[name] = value
    return values

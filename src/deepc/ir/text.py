"""Canonical text form of the graph IR: stable, diffable, one node per line."""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node

SMALL_CONSTANT = 8  # constants with at most this many elements print their values


def format_attr_value(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(format_attr_value(v) for v in value) + ")"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


def format_attrs(attrs: Attrs) -> str:
    if not attrs:
        return ""
    return " {" + ", ".join(f"{k}={format_attr_value(v)}" for k, v in attrs.items()) + "}"


def format_node(graph: Graph, node: Node) -> str:
    outs = ", ".join(f"%{o}: {graph.types[o]}" if o else "_" for o in node.outputs)
    ins = ", ".join(f"%{i}" if i else "_" for i in node.inputs)
    label = f"  # {node.name}" if node.name else ""
    return f"  {outs} = {node.op}({ins}){format_attrs(node.attrs)}{label}"


def format_constant(name: str, value: np.ndarray, graph: Graph) -> str:
    shown = ""
    if value.size <= SMALL_CONSTANT:
        shown = " = " + np.array2string(value.reshape(-1), separator=", ", precision=6)
    return f"  const %{name}: {graph.types[name]}{shown}"


def graph_to_text(graph: Graph, *, constants: bool = True) -> str:
    """The whole graph as text; the same graph always prints the same way."""
    params = ", ".join(f"%{i}: {graph.types[i]}" for i in graph.inputs)
    lines = [f"graph {graph.name}({params}) -> ({', '.join('%' + o for o in graph.outputs)}) {{"]
    if constants:
        lines += [format_constant(k, v, graph) for k, v in sorted(graph.constants.items())]
    lines += [format_node(graph, n) for n in graph.nodes]
    lines.append(f"  return {', '.join('%' + o for o in graph.outputs)}")
    lines.append("}")
    return "\n".join(lines)


def graph_to_dict(graph: Graph) -> dict[str, object]:
    """A JSON-ready form of the graph (constants by type only)."""
    return {
        "name": graph.name,
        "inputs": {i: str(graph.types[i]) for i in graph.inputs},
        "outputs": {o: str(graph.types[o]) for o in graph.outputs},
        "constants": {k: str(graph.types[k]) for k in sorted(graph.constants)},
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": list(n.inputs), "outputs": list(n.outputs),
             "attrs": {k: _jsonable(v) for k, v in n.attrs.items()},
             "types": [str(graph.types[o]) if o else None for o in n.outputs]}
            for n in graph.nodes
        ],
    }


def _jsonable(value: object) -> object:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value

"""Graph IR verifier: structural invariants every frontend and pass must keep."""

from __future__ import annotations

from deepc.errors import VerifyError
from deepc.ir.graph import Graph
from deepc.ir.types import TensorType
from deepc.ops import REGISTRY


def verify_graph(graph: Graph, *, check_types: bool = True) -> Graph:
    """Raise VerifyError naming the first broken invariant; return the graph unchanged.

    Checks: every value is defined once, before use (topological order); constants are not
    produced by nodes; every value has a type; ops exist; outputs are defined; and, with
    `check_types`, each node's recorded output types equal its op's type rule.
    """
    defined: set[str] = set()
    for name in graph.inputs:
        if name in defined:
            raise VerifyError(f"input %{name} declared twice")
        defined.add(name)
    for name in graph.constants:
        if name in defined:
            raise VerifyError(f"constant %{name} is also a graph input")
        defined.add(name)
        if graph.types.get(name) != TensorType.of(graph.constants[name]):
            raise VerifyError(f"constant %{name}: recorded type differs from its array")
    for node in graph.nodes:
        where = f"node {node.name or node.op!r} ({node.op})"
        if node.op not in REGISTRY:
            raise VerifyError(f"{where}: unknown op")
        for i in node.inputs:
            if i and i not in defined:
                raise VerifyError(f"{where}: input %{i} is used before it is defined")
        for o in node.outputs:
            if not o:
                continue
            if o in defined:
                raise VerifyError(f"{where}: output %{o} is defined twice")
            if o not in graph.types:
                raise VerifyError(f"{where}: output %{o} has no type")
            defined.add(o)
        if check_types:
            ins = [graph.types[i] if i else None for i in node.inputs]
            expected = REGISTRY[node.op].infer_types(ins, node.attrs)
            recorded = tuple(graph.types[o] for o in node.outputs if o)
            wanted = tuple(t for o, t in zip(node.outputs, expected) if o)
            if recorded != wanted:
                raise VerifyError(f"{where}: output types {recorded} differ from the op's "
                                  f"type rule {wanted}")
    for o in graph.outputs:
        if o not in defined:
            raise VerifyError(f"graph output %{o} is never defined")
    return graph

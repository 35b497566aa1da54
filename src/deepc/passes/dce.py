"""Dead-code elimination: nodes and constants that no graph output depends on are dropped."""

from __future__ import annotations

from deepc.ir.graph import Graph
from deepc.passes.manager import PassContext, register_pass


def remove_dead(graph: Graph) -> Graph:
    """Keep a node when one of its outputs reaches a graph output (a node with several
    outputs stays whole); keep the constants and types the kept nodes use."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    constants = {k: v for k, v in graph.constants.items() if k in live}
    defined = set(graph.inputs) | set(constants) | {o for n in kept for o in n.outputs if o}
    types = {k: v for k, v in graph.types.items() if k in defined}
    return graph.replace(nodes=tuple(kept), constants=constants, types=types)


@register_pass("dce")
def dce(graph: Graph, ctx: PassContext) -> Graph:
    return remove_dead(graph)

"""Operator fusion: which nodes become one kernel.

Fusion marks nodes with a `fuse_group` attribute (see `groups_of`); kernels are built one per
group. Until the fusion pass runs, every node is its own group.
"""

from __future__ import annotations

from deepc.ir.graph import Graph, Node


def groups_of(graph: Graph) -> list[list[Node]]:
    """Nodes grouped into kernels, in execution order (one per node when unfused)."""
    groups: list[list[Node]] = []
    index: dict[object, int] = {}
    for node in graph.nodes:
        key = node.attr("fuse_group")
        if key is None or key not in index:
            if key is not None:
                index[key] = len(groups)
            groups.append([node])
        else:
            groups[index[key]].append(node)
    return groups

"""Graph to kernels: each group of nodes becomes one loop-IR function over named values."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from deepc.ir.graph import Graph, Node
from deepc.ir.loop import PrimFunc
from deepc.ir.lower import lower
from deepc.ir.tensor import Tensor
from deepc.lowering.inplace import inplace_pairs
from deepc.lowering.te_graph import node_outputs, node_placeholders


@dataclass(frozen=True)
class Kernel:
    """A compiled unit: `func`'s parameters are the values `args` (inputs, then outputs)."""

    name: str
    func: PrimFunc
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[str, ...]
    ops: tuple[str, ...]

    @property
    def args(self) -> tuple[str, ...]:
        return self.inputs + self.outputs


def kernel_name(index: int, nodes: Sequence[Node]) -> str:
    ops = "_".join(dict.fromkeys(n.op for n in nodes))[:48]
    return re.sub(r"[^0-9A-Za-z_]", "_", f"k{index:03d}_{ops}")


def group_kernel(graph: Graph, nodes: Sequence[Node], index: int) -> Kernel:
    """Lower a group of nodes (topologically ordered; values produced inside and consumed
    only inside are inlined or kept local) into one kernel."""
    produced = {o for n in nodes for o in n.outputs if o}
    users = graph.consumers()
    group_ids = {id(n) for n in nodes}
    tensors: dict[str, Tensor] = {}
    external: list[str] = []
    for node in nodes:
        for i, ph in zip(node.inputs, node_placeholders(graph, node)):
            if i and i not in produced and i not in tensors:
                assert ph is not None
                tensors[i] = ph
                external.append(i)
        ins = [tensors[i] if i else None for i in node.inputs]
        for name, t in node_outputs(graph, node, ins).items():
            tensors[name] = t
    results = [o for n in nodes for o in n.outputs if o and (
        o in graph.outputs or any(id(u) not in group_ids for u in users.get(o, [])))]
    name = kernel_name(index, nodes)
    func = lower([tensors[i] for i in external], [tensors[o] for o in results], name)
    if any(external[i] not in graph.constants and external[i] not in graph.inputs
           for i, _ in inplace_pairs(func)):
        # the planner may run it in place: its buffer parameters must not promise noalias
        func = PrimFunc(func.name, func.params, func.body, {**func.attrs, "may_alias": True})
    return Kernel(name, func, tuple(external), tuple(results),
                  tuple(n.name for n in nodes), tuple(n.op for n in nodes))


def graph_kernels(graph: Graph, groups: Sequence[Sequence[Node]] | None = None) -> list[Kernel]:
    """One kernel per group (default: one per node)."""
    groups = groups if groups is not None else [[n] for n in graph.nodes]
    return [group_kernel(graph, g, k) for k, g in enumerate(groups)]

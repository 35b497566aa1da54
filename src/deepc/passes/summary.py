"""Graph statistics for `inspect-ir`: op counts, parameter bytes, estimated FLOPs."""

from __future__ import annotations

from dataclasses import dataclass

from deepc.ir.graph import Graph
from deepc.ops import get_op


@dataclass(frozen=True)
class GraphSummary:
    name: str
    nodes: int
    op_counts: dict[str, int]
    flops_by_op: dict[str, int]
    param_bytes: int
    param_count: int
    inputs: dict[str, str]
    outputs: dict[str, str]

    @property
    def flops(self) -> int:
        return sum(self.flops_by_op.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "nodes": self.nodes, "op_counts": self.op_counts,
            "flops": self.flops, "flops_by_op": self.flops_by_op,
            "param_bytes": self.param_bytes, "param_count": self.param_count,
            "inputs": self.inputs, "outputs": self.outputs,
        }


def summarize(graph: Graph) -> GraphSummary:
    flops: dict[str, int] = {}
    for node in graph.nodes:
        ins = [graph.types[i] if i else None for i in node.inputs]
        outs = [graph.types[o] for o in node.outputs if o]
        n = get_op(node.op).estimate_flops(ins, outs, node.attrs)
        flops[node.op] = flops.get(node.op, 0) + n
    return GraphSummary(
        name=graph.name,
        nodes=len(graph.nodes),
        op_counts=dict(sorted(graph.op_counts().items(), key=lambda kv: (-kv[1], kv[0]))),
        flops_by_op=flops,
        param_bytes=graph.param_bytes,
        param_count=sum(int(c.size) for c in graph.constants.values()),
        inputs={i: str(graph.types[i]) for i in graph.inputs},
        outputs={o: str(graph.types[o]) for o in graph.outputs},
    )

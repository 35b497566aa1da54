"""Layout passes for CPU targets: constant conv weights rearranged for the vector unit.

`kernel_layout`: a conv whose output rows are narrower than a vector, or strided (so its
input rows are not contiguous per output lane), vectorizes better across output channels;
its constant weights are transposed at compile time to [C, *K, M] (kernel_layout "IHWO"),
making the output channels contiguous. Activations keep their layout.
"""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Graph, Node
from deepc.passes.manager import PassContext, register_pass
from deepc.target.sections import VECTOR_KINDS


def wants_channel_vectors(graph: Graph, node: Node, lanes: int) -> bool:
    if node.op != "conv" or node.attr("kernel_layout", "OIHW") != "OIHW":
        return False
    if int(node.attr("group", 1)) != 1 or node.inputs[1] not in graph.constants:
        return False
    out = graph.types[node.outputs[0]]
    channels, width = out.shape[1], out.shape[-1]
    strided = any(int(s) > 1 for s in node.attr("strides") or ())
    return channels >= lanes // 2 and (strided or width < lanes)


@register_pass("kernel_layout")
def kernel_layout(graph: Graph, ctx: PassContext) -> Graph:
    target = ctx.target
    if target is None or getattr(target, "kind", "cpu") not in VECTOR_KINDS:
        return graph
    lanes = max(int(target.vector_bits) // 32, 1)
    users = graph.consumers()
    constants, types, nodes = dict(graph.constants), dict(graph.types), []
    for node in graph.nodes:
        w = node.inputs[1] if len(node.inputs) > 1 else ""
        if not wants_channel_vectors(graph, node, lanes) or len(users.get(w, [])) != 1:
            nodes.append(node)
            continue
        name = f"{w}:ihwo"
        value = np.ascontiguousarray(np.moveaxis(graph.constants[w], 0, -1))
        constants[name] = value
        types[name] = types[w].__class__(value.shape, types[w].dtype)
        del constants[w], types[w]
        inputs = (node.inputs[0], name, *node.inputs[2:])
        nodes.append(Node(node.op, inputs, node.outputs, node.attrs.with_(
            kernel_layout="IHWO"), node.name))
    return graph.replace(nodes=tuple(nodes), constants=constants, types=types)

"""The `gemm_pad` pass: a matmul or gemm over constant weights whose output columns fall a
little short of whole vector registers -> the same product over zero-padded weights, its
elementwise epilogue padded along, and a slice back to the real columns.

The CPU GEMM vectorizes the output columns N and never takes a width that leaves a guarded
tail, so N = 1000 on a 16-lane target runs half-register vectors of 8 (32x256x1000: 118
GFLOP/s where 1008 columns reach 226). Padding the constant weights to whole registers
(at most MAX_PAD more columns) gives full vectors;
the slice that drops the pad is a copy of the output, a small share of a GEMM's work.
"""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import TensorType, itemsize
from deepc.ops import get_op
from deepc.ops.layout import padded_channels
from deepc.passes.layout_nchwc import PASS_THROUGH, add_value
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.nchwc_blocks import pads_to_registers
from deepc.target.sections import VECTOR_KINDS

# columns padded to whole registers: the slice back to the real columns copies the output,
# so only a small pad is worth it (the blocked conv layout, which slices nothing, pads up to
# half a register: nchwc_blocks.MAX_PAD)
MAX_PAD = 1 / 8


def _weights(graph: Graph, node: Node) -> tuple[str, int] | None:
    """The constant weight operand of a GEMM and its axis of output columns, or None."""
    if node.op == "matmul" and len(node.inputs) == 2:
        w = node.inputs[1]
        if w in graph.constants and graph.types[w].rank == 2 \
                and graph.types[node.inputs[0]].rank >= 2:
            return w, 1
    if node.op == "gemm" and len(node.inputs) >= 2:
        w = node.inputs[1]
        if w in graph.constants:
            return w, 0 if node.attr("trans_b", 0) else 1
    return None


class _Padder:
    def __init__(self, graph: Graph, vector_bits: int):
        self.g, self.bits = graph, vector_bits
        self.users = graph.consumers()
        self.constants, self.types = dict(graph.constants), dict(graph.types)
        self.replaced: dict[str, list[Node]] = {}  # first node of a chain -> its new nodes
        self.dropped: set[int] = set()  # ids of nodes folded into a padded chain

    def fresh(self, name: str, t: TensorType) -> str:
        return add_value(self.types, name, t)

    def padded_const(self, name: str, n: int, size: int, axis: int) -> str | None:
        """Constant `name` zero-padded along `axis` from n to size (a broadcast axis of 1
        stays); None when that axis is neither."""
        value = self.constants[name]
        if value.ndim == 0 or value.shape[axis] == 1:
            return name
        if value.shape[axis] != n:
            return None
        pad = [(0, 0)] * value.ndim
        pad[axis] = (0, size - n)
        out = np.pad(value, pad)
        new = self.fresh(f"{name}:padded", TensorType(out.shape, str(out.dtype)))
        self.constants[new] = out
        return new

    def lanes(self, dtype: str) -> int:
        return self.bits // (8 * max(itemsize(dtype), 1))

    def gemm(self, node: Node) -> None:
        found = _weights(self.g, node)
        out = node.outputs[0]
        if found is None:
            return
        w, axis = found
        t = self.types[out]
        n, lanes = t.shape[-1], self.lanes(t.dtype)
        # one row is a matrix-vector product: it streams the weights once, bound by memory
        # whatever its vector width
        if lanes < 2 or t.size == n or not pads_to_registers(n, lanes, MAX_PAD):
            return
        size = padded_channels(n, lanes)
        wp = self.padded_const(w, n, size, axis)
        inputs = [node.inputs[0], wp]
        if node.op == "gemm" and len(node.inputs) > 2 and node.inputs[2]:
            c = node.inputs[2]
            cp = self.padded_const(c, n, size, -1) if c in self.constants else None
            if cp is None:
                return
            inputs.append(cp)
        new = [self.emit(node, tuple(inputs))]
        value = out
        # carry the pad through an epilogue of elementwise ops over constants
        while len(users := self.users.get(value, [])) == 1 and value not in self.g.outputs:
            nxt = users[0]
            operands = self.epilogue_inputs(nxt, value, new[-1].outputs[0], n, size)
            if operands is None:
                break
            new.append(self.emit(nxt, operands))
            self.dropped.add(id(nxt))
            value = nxt.outputs[0]
        last = new[-1].outputs[0]
        rank = len(t.shape)
        new.append(Node("slice", (last,), (value,), Attrs({
            "axes": (rank - 1,), "starts": (0,), "ends": (n,), "steps": (1,)}),
            f"{node.name}:unpad"))
        self.replaced[id(node)] = new

    def epilogue_inputs(self, node: Node, value: str, padded: str, n: int,
                        size: int) -> tuple[str, ...] | None:
        if get_op(node.op).kind not in PASS_THROUGH or len(node.outputs) != 1 \
                or "axis" in node.attrs or self.types[node.outputs[0]] != self.types[value]:
            return None  # per-axis parameters or a broadcast that grows the value
        inputs = []
        for i in node.inputs:
            if i == value:
                inputs.append(padded)
            elif i in self.constants:
                p = self.padded_const(i, n, size, -1)
                if p is None:
                    return None
                inputs.append(p)
            else:
                return None
        return tuple(inputs)

    def emit(self, node: Node, inputs: tuple[str, ...]) -> Node:
        (t,) = get_op(node.op).infer_types([self.types[i] for i in inputs], node.attrs)
        out = self.fresh(f"{node.outputs[0]}:padded", t)
        return Node(node.op, inputs, (out,), node.attrs, node.name)

    def run(self) -> Graph:
        for node in self.g.nodes:
            if node.op in ("matmul", "gemm"):
                self.gemm(node)
        if not self.replaced:
            return self.g
        nodes: list[Node] = []
        for node in self.g.nodes:
            if id(node) in self.replaced:
                nodes.extend(self.replaced[id(node)])
            elif id(node) not in self.dropped:
                nodes.append(node)
        used = {i for x in nodes for i in x.inputs}
        constants = {k: v for k, v in self.constants.items() if k in used}
        produced = {o for x in nodes for o in x.outputs}
        types = {k: t for k, t in self.types.items()
                 if k in used or k in produced or k in self.g.inputs}
        return self.g.replace(nodes=tuple(nodes), constants=constants, types=types)


@register_pass("gemm_pad")
def gemm_pad(graph: Graph, ctx: PassContext) -> Graph:
    target = ctx.target
    if target is None or getattr(target, "kind", "cpu") not in VECTOR_KINDS:
        return graph
    return _Padder(graph, int(getattr(target, "vector_bits", 0))).run()

"""The `nchwc_layout` pass: 2-D convs on CPU targets to the channel-blocked layout
NCHW[b]c, with the layout carried through elementwise ops, broadcasts, pools and channel concats.

The block b is chosen per conv from the target's float32 vector lanes L (`vector_bits //
32`, doubled on targets without FMA: block_lanes): L when the output channels divide by it;
else L over channels padded to whole registers when the pad is at most MAX_PAD of them
(1000 channels on a 16-lane target: 63 blocks, the last half zeros; 24 or 40 channels: 2
or 3 blocks, over 32 or 48); else L/2 (half a register: 8 channels on a 16-lane target, or
12 on an 8-lane one), never below 4. A conv is
blocked when its weights are constants and its output channels divide by such a block (a
depthwise conv: its channels; another grouped conv: its groups' outputs, or a block of
whole groups merged with zeros between them, see grouped_block); its input block is the
block its input already has when that divides the input channels, else the largest divisor
of them up to L (a 3-channel image: one block of 3). Convs whose channels fit none stay
NCHW. Each blocked value keeps its own block; an elementwise op or concat whose blocked
operands differ reblocks them to one. A padded value's pad lanes are never read as
channels: a conv or concat that reads it reblocks its plain channels, and unblocking drops
them. `layout_transform` nodes are
inserted only where a plain consumer (or a model output) reads a blocked value, or a
blocked conv reads a plain one; a graph with a single blockable conv stays plain.
"""

from __future__ import annotations

import math

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import TensorType
from deepc.ops import get_op
from deepc.ops.conv_nchwc import merge_groups, weight_to_blocked
from deepc.ops.layout import padded_channels
from deepc.ops.registry import FusionKind
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.nchwc_blocks import (
    MIN_BLOCK,
    block_lanes,
    channel_block,
    grouped_block,
    largest_divisor,
)

PASS_THROUGH = (FusionKind.ELEMWISE, FusionKind.BROADCAST)
MIN_CONVS = 2  # fewer blocked convs than this: the graph stays plain
POOLS = frozenset({"max_pool", "avg_pool", "global_avg_pool", "global_max_pool"})


def add_value(types: dict[str, TensorType], name: str, t: TensorType) -> str:
    """A new value of type `t` in `types`, named `name` or, where that is taken, `name:k`."""
    k, base = 0, name
    while name in types:
        k += 1
        name = f"{base}:{k}"
    types[name] = t
    return name

class _Blocker:
    def __init__(self, graph: Graph, lanes: int):
        self.g, self.lanes = graph, lanes
        self.nodes: list[Node] = []
        self.types = dict(graph.types)
        self.constants = dict(graph.constants)
        self.blocked: dict[str, str] = {}  # plain value -> its blocked twin
        self.plain: set[str] = set(graph.inputs) | set(graph.constants)  # plain values exist
        self.views: dict[tuple[str, int], str] = {}  # (value, block) -> transformed value
        # what the pad lanes of a padded blocked value hold, None when they may not be finite
        self.pads: dict[str, float | None] = {}

    # -- values in either layout, made on demand --------------------------------------------
    def add_value(self, name: str, t: TensorType) -> str:
        return add_value(self.types, name, t)

    def emit(self, op: str, inputs: tuple[str, ...], attrs: dict, out: str, name: str) -> str:
        attrs_ = Attrs(attrs)
        (t,) = get_op(op).infer_types([self.types[i] if i else None for i in inputs], attrs_)
        if out in self.types and self.types[out] != t:
            out = self.add_value(out, t)
        self.types[out] = t
        self.nodes.append(Node(op, inputs, (out,), attrs_, name))
        return out

    def block(self, v: str) -> int:
        """The block of a blocked value (the last axis of its twin)."""
        return self.types[self.blocked[v]].shape[-1]

    def readable_padded(self, v: str) -> bool:
        """Whether v is blocked with pad lanes that a conv may read times zero weights (they
        are finite: a NaN or inf would turn the zero into NaN)."""
        return v in self.blocked and self.types[v].shape[1] % self.block(v) != 0 \
            and self.pads.get(v) is not None

    def pad_seen(self, v: str, block: int) -> float | None:
        """What the pad lanes of operand v read in `block` hold: its own when its twin has
        that block, zeros from a transform's padding otherwise."""
        if v in self.blocked and self.block(v) == block:
            return self.pads.get(v, 0.0)
        return 0.0

    def plain_of(self, v: str) -> str:
        if v in self.plain or v not in self.blocked:
            return v
        self.plain.add(v)
        src, t, block = self.blocked[v], self.types[v], self.block(v)
        if all(d == 1 for d in t.shape[2:]) and t.shape[1] % block == 0:
            # one pixel: the blocked order is the plain order, a reshape (that fuses anywhere)
            self.emit("reshape", (src,), {"shape": t.shape}, v, f"{v}:unblock")
        else:
            self.emit("layout_transform", (src,), {
                "src_layout": f"NCHW{block}c", "dst_layout": "NCHW",
                **({"channels": t.shape[1]} if t.shape[1] % block else {})}, v, f"{v}:unblock")
        return v

    def blocked_of(self, v: str, block: int) -> str:
        if v in self.blocked and self.block(v) == block:
            return self.blocked[v]
        if (v, block) not in self.views:
            src = self.plain_of(v)
            out = self.add_value(f"{v}:nchw{block}c", self.types[v])
            del self.types[out]
            t = self.types[v]
            if all(d == 1 for d in t.shape[2:]) and t.shape[1] % block == 0:
                op, attrs = "reshape", {"shape": (t.shape[0], t.shape[1] // block,
                                                  *t.shape[2:], block)}
            else:
                op, attrs = "layout_transform", {
                    "src_layout": "NCHW", "dst_layout": f"NCHW{block}c",
                    **({"channels": t.shape[1]} if t.shape[1] % block else {})}
            self.views[v, block] = self.emit(op, (src,), attrs, out, f"{v}:block")
        return self.views[v, block]

    # -- per op ------------------------------------------------------------------------------
    def run(self) -> Graph:
        for node in self.g.nodes:
            if not (self.conv(node) or self.lookup(node) or self.pass_through(node)
                    or self.concat(node) or self.pool(node)):
                self.keep(node)
        for out in self.g.outputs:
            self.plain_of(out)
        used = {i for n in self.nodes for i in n.inputs} | set(self.g.outputs)
        constants = {k: v for k, v in self.constants.items() if k in used}
        produced = {o for n in self.nodes for o in n.outputs}
        types = {k: t for k, t in self.types.items()
                 if k in used or k in produced or k in self.g.inputs}
        return self.g.replace(nodes=tuple(self.nodes), constants=constants, types=types)

    def keep(self, node: Node) -> None:
        inputs = tuple(self.plain_of(i) if i else i for i in node.inputs)
        self.nodes.append(Node(node.op, inputs, node.outputs, node.attrs, node.name))
        self.plain.update(o for o in node.outputs if o)

    def finish(self, node: Node, op: str, inputs: tuple[str, ...], attrs: dict) -> None:
        out = node.outputs[0]
        self.blocked[out] = self.emit(op, inputs, attrs, f"{out}:nchwc", node.name)

    def conv(self, node: Node) -> bool:
        if node.op != "conv" or node.attr("kernel_layout", "OIHW") != "OIHW":
            return False
        x, w = self.types[node.inputs[0]], node.inputs[1]
        if x.rank != 4 or x.dtype != "float32" or w not in self.constants:
            return False
        wv = self.constants[w]
        out_c, in_c, group = wv.shape[0], x.shape[1], int(node.attr("group", 1))
        depthwise = group == in_c == out_c and group > 1
        bias = node.inputs[2] if len(node.inputs) > 2 else ""
        # padding needs every output channel's parameters at hand to pad with zeros
        oc = channel_block(out_c, self.lanes, pad=(group == 1 or depthwise)
                           and (not bias or bias in self.constants))
        if not oc:
            return False
        if group != 1 and not depthwise:
            grouped = grouped_block(out_c, group, self.lanes)
            if grouped is None:
                return False
            oc, merged = grouped
            if merged:
                wv, group = merge_groups(wv, group, oc)
        src = node.inputs[0]
        span = in_c // group  # input channels one output block reads
        pad: float | None = 0.0  # of the output's pad lanes: zero weights, zero bias
        if depthwise:
            ic = oc
            # each pad lane reads only its own channel's pad lanes
            pad = None if self.pad_seen(src, oc) is None else 0.0
        elif src in self.blocked and span % self.block(src) == 0:
            ic = self.block(src)
        elif group == 1 and self.readable_padded(src):
            ic = self.block(src)  # its pad lanes meet zero weights
            wv = _zero_padded(wv, padded_channels(in_c, ic), axis=1)
        else:
            ic = largest_divisor(span, self.lanes)
        extra = tuple(node.inputs[2:])
        if out_c % oc:
            size = padded_channels(out_c, oc)
            wv = _zero_padded(wv, size)
            if bias:
                extra = (self.const_operand(bias, _zero_padded(self.constants[bias], size)),
                         *extra[1:])
            if depthwise:
                group = size
            self.pads[node.outputs[0]] = pad
        wb = weight_to_blocked(wv, ic, oc, depthwise)
        wname = self.add_value(f"{w}:blocked", TensorType(wb.shape, str(wb.dtype)))
        self.constants[wname] = wb
        inputs = (self.blocked_of(node.inputs[0], ic), wname, *extra)
        attrs = {k: v for k, v in node.attrs.items() if k != "kernel_layout"}
        attrs["group"] = group
        self.finish(node, "conv_nchwc", inputs, attrs)
        return True

    def lookup(self, node: Node) -> bool:
        """A table lookup is elementwise in its first input: a blocked one stays blocked,
        the table as it is."""
        if node.op != "lookup" or node.inputs[0] not in self.blocked:
            return False
        self.finish(node, "lookup", (self.blocked[node.inputs[0]], node.inputs[1]), {})
        return True

    def pass_through(self, node: Node) -> bool:
        """An elementwise or broadcast op over a blocked value stays blocked when every other
        input is blocked too or broadcasts along the channels (constants are reblocked)."""
        if get_op(node.op).kind not in PASS_THROUGH or len(node.outputs) != 1 \
                or "axis" in node.attrs:  # per-axis parameters (requantize): no numpy broadcast
            return False
        first = next((i for i in node.inputs if i in self.blocked), None)
        if first is None:
            return False
        out = self.g.types[node.outputs[0]]
        if out.rank != 4:
            return False
        block = self.block(first)
        inputs = []
        for i in node.inputs:
            v = self.operand(i, out, block) if i else i
            if v is None:
                return False
            inputs.append(v)
        if any(isinstance(v, np.ndarray) for v in inputs):
            inputs = [self.const_operand(i, v) if isinstance(v, np.ndarray) else v
                      for i, v in zip(node.inputs, inputs)]
        if out.shape[1] % block:
            self.pads[node.outputs[0]] = self.pad_through(node, block)
        self.finish(node, node.op, tuple(inputs), dict(node.attrs))
        return True

    def pad_through(self, node: Node, block: int) -> float | None:
        """What an elementwise op leaves in the pad lanes: the op itself evaluated on what
        each operand holds there (zero-padded constants hold 0)."""
        values = []
        for i in node.inputs:
            if i in self.constants and (self.constants[i].ndim < 3
                                        or self.constants[i].shape[-3] == 1):
                arr = self.constants[i]  # broadcast along the channels: its pad lanes too
                if arr.size == 0 or not np.all(arr == arr.flat[0]):
                    return None
                value = float(arr.flat[0])
            elif i in self.constants or self.types[i].shape[1] > 1:
                value = self.pad_seen(i, block)
            else:
                return None  # a computed value broadcast into the pad lanes
            if value is None:
                return None
            values.append(np.full((1,), value, self.types[i].dtype))
        with np.errstate(all="ignore"):
            (result,) = get_op(node.op).evaluate(values, node.attrs)
        pad = float(np.asarray(result, np.float64).reshape(-1)[0])
        return pad if np.isfinite(pad) else None

    def operand(self, v: str, out: TensorType, block: int) -> str | np.ndarray | None:
        if v in self.blocked:
            return self.blocked_of(v, block)
        t = self.types[v]
        shape = (1,) * (4 - t.rank) + t.shape if t.rank <= 4 else None
        if shape is None:
            return None
        if v in self.constants:
            arr = self.constants[v].reshape(shape)
            if shape[1] == 1:
                return arr.reshape(*shape, 1)
            c = shape[1]
            if c % block:  # a padded operand: its pad lanes meet only pad lanes
                arr = _zero_padded(arr, padded_channels(c, block), axis=1)
            return np.ascontiguousarray(np.moveaxis(
                arr.reshape(shape[0], -(-c // block), block, *shape[2:]), 2, -1))
        if all(d == 1 for d in t.shape):
            return v
        if t.rank == 4 and t.shape[1] == out.shape[1]:
            return self.blocked_of(v, block)
        return None

    def const_operand(self, name: str, arr: np.ndarray) -> str:
        new = self.add_value(f"{name}:nchwc", TensorType(arr.shape, str(arr.dtype)))
        self.constants[new] = arr
        return new

    def pool(self, node: Node) -> bool:
        """Pools over the spatial axes of a blocked value carry its block along."""
        if node.op not in POOLS or node.inputs[0] not in self.blocked:
            return False
        if self.types[node.inputs[0]].rank != 4 or node.attr("layout", "NCHW") != "NCHW":
            return False
        src = node.inputs[0]
        if src in self.pads:
            # a window of equal pad lanes is that value, but an average over the border
            # also counts zeros from the spatial padding
            pad = self.pads[src]
            self.pads[node.outputs[0]] = pad if node.op != "avg_pool" or pad == 0 else None
        self.finish(node, node.op, (self.blocked[src],), {**dict(node.attrs), "layout": "NCHWc"})
        return True

    def concat(self, node: Node) -> bool:
        """Parts concatenate as blocks of the widest block that divides them all."""
        if node.op != "concat" or not node.inputs:
            return False
        rank = self.types[node.inputs[0]].rank
        if rank != 4 or int(node.attr("axis", 0)) % rank != 1:
            return False
        if not all(i in self.blocked for i in node.inputs):
            return False
        # the widest block that divides every part (a padded part's twin does not: it is
        # reblocked through the plain layout, as a part of another block is)
        block = math.gcd(*(self.block(i) for i in node.inputs),
                         *(self.types[i].shape[1] for i in node.inputs))
        if block < min(MIN_BLOCK, self.lanes):
            return False
        self.finish(node, "concat", tuple(self.blocked_of(i, block) for i in node.inputs),
                    {**dict(node.attrs), "axis": 1})
        return True


def _zero_padded(arr: np.ndarray, size: int, axis: int = 0) -> np.ndarray:
    """`arr` with zeros appended along `axis` up to `size`."""
    pad = [(0, 0)] * arr.ndim
    pad[axis] = (0, size - arr.shape[axis])
    return np.pad(arr, pad)


@register_pass("nchwc_layout")
def nchwc_layout(graph: Graph, ctx: PassContext) -> Graph:
    lanes = block_lanes(ctx.target)
    if not lanes or sum(n.op == "conv" for n in graph.nodes) < MIN_CONVS:
        return graph
    out = _Blocker(graph, lanes).run()
    # transforms in and out cost more than a lone blocked conv gains
    return out if sum(n.op == "conv_nchwc" for n in out.nodes) >= MIN_CONVS else graph

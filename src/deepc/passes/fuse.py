"""Operator fusion: the graph's nodes grouped into kernels by fusion kind (`fuse_group`).

TVM's rules on the dataflow graph. A group has at most one *master*, an OUT_FUSABLE or
REDUCTION node whose output pattern drives the kernel's loops; everything else in it is
elementwise, broadcast or injective:

- chains of elementwise / broadcast / injective ops fuse together;
- elementwise epilogues (bias, activation, residual add, clip, `x * sigmoid(x)`) fuse into
  a master when they keep the master's output shape and the master's output reaches nothing
  else (the lowering applies them to the accumulator before the one store);
- injective producers fuse into a reduction (its loops read them inlined); into a
  conv/matmul only pure index remaps (reshape, identity) do, so flatten costs nothing, and
  into an int32 depthwise conv (int8 models) the widening of its bytes (cast, minus a zero
  point) as well, so the bytes are read once instead of copied to int32 first;
- on GPU targets, a per-channel prologue (scale, shift, activation: BN + ReLU after a
  concat in DenseNet) fuses into the 1x1 conv that alone reads it: the tiled product applies
  it as it loads the conv's input, where a kernel of its own writes and rereads a copy;
- OPAQUE ops stay alone, and a producer never joins a group whose loops would recompute
  it for every broadcast copy of an element;
- a concat whose parts are each the result of a kernel that exists anyway (a conv, a
  reduction, an opaque op, another such concat) and read by the concat alone stays alone:
  the memory plan lets those kernels write into its slices and calls no copy
  (lowering/views.py), so its consumer reads one buffer instead of selecting between parts.

A producer group joins a consumer group only when every consumer of its values is in that
group (the consumer post-dominates it), so groups stay convex and the kernel graph acyclic.
The pass reorders nodes so that each group is contiguous and numbers groups 0, 1, ... in
execution order; kernels are built one per group (`groups_of`).
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from typing import Any

from deepc.ir.graph import Graph, Node
from deepc.lowering.views import part_offsets
from deepc.ops import get_op
from deepc.ops.registry import FusionKind
from deepc.passes.manager import PassContext, register_pass

MASTER_KINDS = (FusionKind.OUT_FUSABLE, FusionKind.REDUCTION)
# pure index remaps: inlining them anywhere costs index arithmetic only
DATA_MOVES = frozenset({"reshape", "identity", "layout_transform"})
# injective ops whose output outgrows an input yet read each input element once
READ_ONCE = frozenset({"concat", "pad"})
# DenseNet's concat + BN + ReLU before a 1x1 conv as the conv's prologue, the concat read in
# place part by part: torchvision's DenseNet-121 at batch 32, TF32 on an H100 4.91 -> 4.11 ms
# (61 copy kernels gone; same outputs bit for bit), though nvcc spills 4-12 bytes in 8 of
# those 61 kernels (168 registers; the parts' bases live through the K loop).
CONCAT_PROLOGUES = True
# a group's ops nest into one expression tree that lowering walks recursively: a long chain
# (20,000 elementwise ops) becomes several kernels instead of a RecursionError
MAX_GROUP_NODES = 64


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


def master_of(nodes: list[Node]) -> Node | None:
    """The OUT_FUSABLE or REDUCTION node of a group, if any."""
    return next((n for n in nodes if get_op(n.op).kind in MASTER_KINDS), None)


class _Fusion:
    """Groups as sets of node positions; `group[k]` is the id of node k's group."""

    def __init__(self, graph: Graph, target: Any = None):
        self.graph, self.target = graph, target
        self.nodes = graph.nodes
        self.kind = [get_op(n.op).kind for n in graph.nodes]
        self.producer = {o: k for k, n in enumerate(graph.nodes) for o in n.outputs if o}
        self.users: dict[str, list[int]] = {}
        for k, n in enumerate(graph.nodes):
            for i in dict.fromkeys(n.inputs):
                if i:
                    self.users.setdefault(i, []).append(k)
        self.group = list(range(len(graph.nodes)))
        self.members: dict[int, list[int]] = {k: [k] for k in range(len(graph.nodes))}
        self.graph_outputs = set(graph.outputs)
        self.alone: set[int] = set()  # concats whose parts the plan writes in place

    def run(self) -> list[list[int]]:
        for k in range(len(self.nodes)):
            if self.joined_in_place(k):
                self.alone.add(k)
            else:
                self.grow(self.group[k])
        return self.ordered_groups()

    def joined_in_place(self, k: int) -> bool:
        """Whether node k is a concat whose parts the memory plan can write in place and
        whose parts' kernels exist whatever this concat does (their groups are final: only
        this concat reads the parts, and it pulls no producer in)."""
        node = self.nodes[k]
        if node.op != "concat":
            return False
        parts = [i for i in node.inputs if i]
        if len(set(parts)) != len(parts) or part_offsets(
                [self.graph.types[p] for p in parts], int(node.attr("axis"))) is None:
            return False
        for p in parts:
            src = self.producer.get(p)
            if src is None or p in self.graph_outputs or self.users.get(p) != [k]:
                return False
            g = self.group[src]
            if self.master(g) is None and not any(
                    self.kind[j] == FusionKind.OPAQUE or j in self.alone for j in self.members[g]):
                return False
        return True

    def grow(self, h: int) -> None:
        """Pull producer groups into group `h` until none can join; a join can make
        another producer's consumers all lie in `h` (diamonds such as x * sigmoid(x))."""
        changed = True
        while changed:
            changed = False
            for g in self.producer_groups(h):
                if self.can_fuse(g, h):
                    self.merge(g, h)
                    changed = True
                    break

    def producer_groups(self, h: int) -> list[int]:
        """Groups producing values that group `h` reads, the latest producer first."""
        found: dict[int, int] = {}
        for k in self.members[h]:
            for i in self.nodes[k].inputs:
                p = self.producer.get(i)
                if p is not None and self.group[p] != h:
                    found[self.group[p]] = max(found.get(self.group[p], -1), p)
        return sorted(found, key=lambda g: -found[g])

    def merge(self, g: int, h: int) -> None:
        for k in self.members.pop(g):
            self.group[k] = h
            self.members[h].append(k)
        self.members[h].sort()

    def master(self, g: int) -> int | None:
        return next((k for k in self.members[g] if self.kind[k] in MASTER_KINDS), None)

    def edges(self, g: int, h: int) -> list[tuple[str, int]] | None:
        """(value, consumer) pairs from group g into group h, or None when a value of g
        is a graph output or is read outside g and h."""
        found = []
        for k in self.members[g]:
            for out in self.nodes[k].outputs:
                if not out:
                    continue
                if out in self.graph_outputs:
                    return None
                for u in self.users.get(out, []):
                    if self.group[u] == h:
                        found.append((out, u))
                    elif self.group[u] != g:
                        return None
        return found

    def can_fuse(self, g: int, h: int) -> bool:
        both = self.members[g] + self.members[h]
        if len(both) > MAX_GROUP_NODES:
            return False
        if any(self.kind[k] == FusionKind.OPAQUE or k in self.alone for k in both):
            return False
        edges = self.edges(g, h)
        if not edges:
            return False
        only_moves = all(self.nodes[k].op in DATA_MOVES for k in self.members[g])
        if not only_moves and (any(self.expands(v, u) for v, u in edges)
                               or any(self.packs_whole_words(k) for k in self.members[h])):
            return False
        mg, mh = self.master(g), self.master(h)
        if mg is not None and mh is not None:
            return False
        if mg is not None:  # h would be mg's epilogue: elementwise at the master's shape
            shape = self.graph.types[self.nodes[mg].outputs[0]].shape
            return all(self.kind[k] <= FusionKind.BROADCAST
                       and all(self.graph.types[o].shape == shape
                               for o in self.nodes[k].outputs if o)
                       for k in self.members[h])
        if any(self.kind[k] > FusionKind.INJECTIVE for k in self.members[g]):
            return False
        if mh is not None and any(self.blocks_lanes_of(k, mh) for k in self.members[g]):
            return False
        if mh is not None and self.kind[mh] == FusionKind.OUT_FUSABLE:
            feeding = self.upstream(mh, h)
            return only_moves or self.widens_bytes(g, mh) \
                or not any(u in feeding for _, u in edges) or self.prologue(g, mh, edges)
        return True

    def prologue(self, g: int, conv: int, edges: list[tuple[str, int]]) -> bool:
        """Whether group g is a per-channel prologue of a plain 1x1 conv on a GPU: elementwise
        ops over one value of the conv input's shape (or a channel concat of values) and
        per-channel (or scalar) constants, read by the conv alone as its input. The lowering
        inlines it into the conv's loads; the tiled product evaluates it per element
        fetched, once per tile column block (gpu_gemm_operand.py)."""
        node, graph = self.nodes[conv], self.graph
        if getattr(self.target, "gpu", None) is None or node.op != "conv" \
                or int(node.attr("group", 1)) != 1 or any(int(p) for p in node.attr("pads") or ()) \
                or any(int(k) != 1 for k in graph.types[node.inputs[1]].shape[2:]) \
                or any(u != conv or v != node.inputs[0] for v, u in edges):
            return False
        x = graph.types[node.inputs[0]].shape
        inner = {o for k in self.members[g] for o in self.nodes[k].outputs}
        # a concat along channels may lead the group (DenseNet's concat + BN + ReLU, its
        # parts read by later concats too): the conv reads each part over its channels
        concats = [k for k in self.members[g] if self.nodes[k].op == "concat"]
        if len(concats) > int(CONCAT_PROLOGUES) or any(
                int(self.nodes[k].attr("axis")) % len(x) != 1 for k in concats):
            return False
        parts = [i for k in concats for i in self.nodes[k].inputs if i]
        if any(p in graph.constants or graph.types[p].shape[:1] + graph.types[p].shape[2:]
               != x[:1] + x[2:] for p in parts):
            return False
        data: set[str] = set()
        for k in self.members[g]:
            if k in concats:
                continue
            if self.kind[k] > FusionKind.BROADCAST:
                return False
            for i in self.nodes[k].inputs:
                c = graph.constants.get(i)
                if i in inner or (c is not None and all(
                        d == 1 for a, d in enumerate((1,) * (len(x) - c.ndim) + c.shape)
                        if a != 1)):
                    continue
                data.add(i)
        if concats:
            return not data
        return len(data) == 1 and graph.types[data.pop()].shape == x

    def packs_whole_words(self, k: int) -> bool:
        """A pack_rows of uint8 rows of whole words: the planner makes it a view of the
        bytes, where fused into their producer it would build each word of four computed
        bytes."""
        node = self.nodes[k]
        x = self.graph.types[node.inputs[0]] if node.op == "pack_rows" else None
        return x is not None and x.dtype == "uint8" and x.shape[-1] % 4 == 0

    def widens_bytes(self, g: int, conv: int) -> bool:
        """Whether group g only widens int8/uint8 values to the int32 input of a depthwise
        conv (data moves, casts from bytes, a scalar zero point subtracted): a load and an
        extend per element of the conv's padded copy, where a kernel of its own writes and
        rereads 4x the bytes."""
        node = self.nodes[conv]
        if node.op not in ("conv", "conv_nchwc") or int(node.attr("group", 1)) == 1 \
                or self.graph.types[node.inputs[0]].dtype != "int32":
            return False
        types, constants = self.graph.types, self.graph.constants
        for k in self.members[g]:
            n = self.nodes[k]
            if n.op in DATA_MOVES:
                continue
            if n.op == "cast" and types[n.inputs[0]].dtype in ("int8", "uint8"):
                continue
            if n.op == "sub" and n.inputs[1] in constants and constants[n.inputs[1]].size == 1:
                continue
            return False
        return True

    def blocks_lanes_of(self, k: int, master: int) -> bool:
        """Whether node k blocks channels (NCHW -> NCHWc) for a depthwise conv: the conv
        reads its input along the vector lanes, so inlined the transform would gather every
        lane from the plain layout (channel stride H*W, 1 GFLOP/s in ConvNeXt); as a kernel
        of its own it is one copy."""
        node, conv = self.nodes[k], self.nodes[master]
        if node.op != "layout_transform" or node.attr("dst_layout") == "NCHW":
            return False
        if conv.op != "conv_nchwc" or int(conv.attr("group", 1)) == 1:
            return False
        w = self.graph.types[conv.inputs[1]].shape
        return w[1] == w[4] == 1

    def expands(self, value: str, user: int) -> bool:
        """Whether `user`'s loops would read `value` once per broadcast copy."""
        if self.kind[user] > FusionKind.INJECTIVE or self.nodes[user].op in READ_ONCE:
            return False
        size = self.graph.types[value].size
        return any(self.graph.types[o].size > size for o in self.nodes[user].outputs if o)

    def upstream(self, master: int, h: int) -> set[int]:
        """The master and the nodes of group h it reads from, transitively."""
        seen, stack = {master}, [master]
        while stack:
            for i in self.nodes[stack.pop()].inputs:
                p = self.producer.get(i)
                if p is not None and self.group[p] == h and p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def ordered_groups(self) -> list[list[int]]:
        """Groups in a topological order, each in node order; ties keep the graph's order."""
        deps: dict[int, set[int]] = {g: set() for g in self.members}
        for g, members in self.members.items():
            for k in members:
                for i in self.nodes[k].inputs:
                    p = self.producer.get(i)
                    if p is not None and self.group[p] != g:
                        deps[g].add(self.group[p])
        waiting = {g: len(d) for g, d in deps.items()}
        after: dict[int, list[int]] = {}
        for g, d in deps.items():
            for p in d:
                after.setdefault(p, []).append(g)
        ready = [(self.members[g][0], g) for g, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        order: list[list[int]] = []
        while ready:
            _, g = heapq.heappop(ready)
            order.append(self.members[g])
            for s in after.get(g, []):
                waiting[s] -= 1
                if waiting[s] == 0:
                    heapq.heappush(ready, (self.members[s][0], s))
        assert len(order) == len(self.members), "fusion made the kernel graph cyclic"
        return order


def fusion_groups(graph: Graph, target: Any = None) -> list[list[Node]]:
    """The fused groups of a graph, in an execution order (without marking the nodes), for
    `target` (a deepc Target, or None: no target-specific rule)."""
    return [[graph.nodes[k] for k in g] for g in _Fusion(graph, target).run()]


@register_pass("fuse")
def fuse(graph: Graph, ctx: PassContext) -> Graph:
    """Mark every node with its group's number; nodes are reordered group by group."""
    nodes = [replace(n, attrs=n.attrs.with_(fuse_group=k))
             for k, group in enumerate(fusion_groups(graph, ctx.target)) for n in group]
    return graph.replace(nodes=tuple(nodes))

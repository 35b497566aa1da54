"""Rewriter: a working copy of a graph that a pass edits node by node into a new graph.

A pass visits the nodes in topological order; each visited node is either kept as it is or
rewritten: dropped, its outputs aliased to other values or turned into constants, new nodes
emitted in its place. Later nodes read aliased values under their new names. Use counts
(graph outputs count as a use) are kept current, so a rule can ask whether it is a value's
only reader before it rewrites the value's producer.

Graph outputs keep their names: when an output is aliased to another value, `finish` renames
that value's producer output to the graph output's name, or failing that (the value is an
input, a constant or another output) emits an identity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import TensorType
from deepc.ops import get_op
from deepc.passes.dce import remove_dead


class Rewriter:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.outputs = frozenset(graph.outputs)
        self.types: dict[str, TensorType] = dict(graph.types)
        self.constants: dict[str, np.ndarray] = dict(graph.constants)
        self.nodes: list[Node | None] = []  # kept and emitted nodes; None once superseded
        self.producer: dict[str, int] = {}  # value -> its node's index in `nodes`
        self.alias: dict[str, str] = {}
        self.uses: Counter[str] = Counter(i for n in graph.nodes for i in n.inputs if i)
        self.uses.update(graph.outputs)
        self.claimed: set[str] = set()  # values a graph output will take the name of
        self.changed = False

    # -- reading the current graph ----------------------------------------------------------
    def resolve(self, value: str) -> str:
        while value in self.alias:
            value = self.alias[value]
        return value

    def resolved(self, node: Node) -> Node:
        inputs = tuple(self.resolve(i) for i in node.inputs)
        return node if inputs == node.inputs else replace(node, inputs=inputs)

    def type(self, value: str) -> TensorType:
        return self.types[self.resolve(value)]

    def const(self, value: str) -> np.ndarray | None:
        return self.constants.get(self.resolve(value)) if value else None

    def producer_of(self, value: str) -> Node | None:
        k = self.producer.get(self.resolve(value))
        return None if k is None else self.nodes[k]

    def only_use(self, value: str) -> bool:
        """Whether one node reads `value` (once) and it is no graph output."""
        return self.uses[self.resolve(value)] == 1

    # -- editing ----------------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        k = 1
        while f"{hint}:{k}" in self.types:
            k += 1
        return f"{hint}:{k}"

    def add_constant(self, array: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.set_constant(name, array)
        return name

    def set_constant(self, name: str, array: np.ndarray) -> None:
        """Make `name` (a new name, or the output of a dropped node) a constant."""
        self.constants[name] = array
        self.types[name] = TensorType.of(array)

    def keep(self, node: Node) -> None:
        for o in node.outputs:
            if o:
                self.producer[o] = len(self.nodes)
        self.nodes.append(node)

    def emit(self, op: str, inputs: Sequence[str], attrs: Mapping[str, Any] | None = None, *,
             outputs: Sequence[str] | None = None, name: str = "") -> tuple[str, ...]:
        """Add a node, typed by its op's rule; fresh output names unless `outputs` is given
        (the outputs of a dropped node: a replacement keeps their names and types)."""
        inputs = tuple(self.resolve(i) for i in inputs)
        frozen = Attrs(attrs or {})
        types = get_op(op).infer_types([self.types[i] if i else None for i in inputs], frozen)
        outs = tuple(outputs) if outputs is not None else tuple(self.fresh(op) for _ in types)
        for o, t in zip(outs, types):
            if o:
                self.types[o] = t
        self.uses.update(i for i in inputs if i)
        self.keep(Node(op, inputs, outs, frozen, name))
        self.changed = True
        return outs

    def drop(self, node: Node) -> None:
        """Forget `node`: the one being visited, or a kept one a rewrite supersedes."""
        k = next((self.producer[o] for o in node.outputs if o in self.producer), None)
        if k is not None and self.nodes[k] is node:
            self.nodes[k] = None
            for o in node.outputs:
                self.producer.pop(o, None)
        self.uses.subtract(i for i in node.inputs if i)
        self.changed = True

    def alias_value(self, old: str, new: str) -> None:
        """Readers of `old` (no longer defined) read `new` instead; their types must agree."""
        new = self.resolve(new)
        if self.types[old] != self.types[new]:
            raise AssertionError(f"alias %{old}: {self.types[old]} -> %{new}: "
                                 f"{self.types[new]}")
        self.alias[old] = new
        self.uses[new] += self.uses.pop(old, 0)
        if old in self.outputs:
            self.claimed.add(new)
        self.changed = True

    def can_take_output_name(self, value: str) -> bool:
        """Whether a graph output aliased to `value` can become the name of value's producer."""
        value = self.resolve(value)
        return value in self.producer and value not in self.outputs and value not in self.claimed

    def replace(self, node: Node, values: Sequence[str] | str) -> bool:
        """Drop `node`, its outputs aliased to `values`. Declined (False, nothing changes)
        when that would leave a graph output as a mere copy of an input, a constant or
        another output."""
        values = [values] if isinstance(values, str) else list(values)
        pairs = [(o, v) for o, v in zip(node.outputs, values) if o]
        if any(not v or (o in self.outputs and not self.can_take_output_name(v))
               for o, v in pairs):
            return False
        self.drop(node)
        for o, v in pairs:
            self.alias_value(o, v)
        return True

    # -- the result -------------------------------------------------------------------------
    def finish(self) -> Graph:
        """The new graph: graph outputs under their own names, dead nodes and constants gone."""
        nodes = [self.resolved(n) for n in self.nodes if n is not None]
        rename: dict[str, str] = {}
        copies = []
        for y in dict.fromkeys(self.graph.outputs):
            x = self.resolve(y)
            if x == y:
                continue
            if x in self.producer and x not in self.outputs and x not in rename:
                rename[x] = y
            else:
                copies.append(Node("identity", (rename.get(x, x),), (y,)))
        if rename:
            nodes = [replace(n, inputs=tuple(rename.get(i, i) for i in n.inputs),
                             outputs=tuple(rename.get(o, o) for o in n.outputs)) for n in nodes]
        graph = self.graph.replace(nodes=(*nodes, *copies), types=self.types,
                                   constants=self.constants)
        return remove_dead(graph)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so NaNs match themselves and -0.0 differs from 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == object:
        return bool(a.tolist() == b.tolist())
    return a.tobytes() == b.tobytes()


Visit = Callable[[Rewriter, Node], bool]


def rewrite(graph: Graph, visit: Visit, rw: Rewriter | None = None) -> tuple[Graph, bool]:
    """One sweep: `visit(rw, node)` for each node in order (inputs already renamed); it
    returns True when it dropped or replaced the node, False to keep it. Returns the new
    graph and whether anything changed (the graph itself when nothing did)."""
    rw = rw or Rewriter(graph)
    for node in graph.nodes:
        node = rw.resolved(node)
        if not visit(rw, node):
            rw.keep(node)
    if not rw.changed:
        return graph, False
    return rw.finish(), True

"""Common-subexpression elimination: equal constants and equal nodes become one value each.

Constants with the same type and bytes merge first (exporters duplicate shared weights and
shape constants), so nodes reading merged constants compare equal too. A node with the same
op, inputs and attributes as an earlier node is replaced by it. Every op is a pure function
of its inputs, so this is always exact.
"""

from __future__ import annotations

import hashlib

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import TensorType
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.rewriter import Rewriter, rewrite, same_bytes


def constant_key(value: np.ndarray) -> tuple[TensorType, bytes]:
    data = repr(value.tolist()).encode() if value.dtype == object else value.tobytes()
    return TensorType.of(value), hashlib.sha256(data).digest()


def merge_constants(rw: Rewriter) -> None:
    """Alias every constant to the first one (by name) with the same type and bytes."""
    first: dict[tuple[TensorType, bytes], list[str]] = {}
    for name in sorted(rw.constants):
        value = rw.constants[name]
        same = first.setdefault(constant_key(value), [])
        kept = next((k for k in same if same_bytes(rw.constants[k], value)), None)
        if kept is None:
            same.append(name)
        else:
            rw.alias_value(name, kept)


@register_pass("cse")
def cse(graph: Graph, ctx: PassContext) -> Graph:
    rw = Rewriter(graph)
    merge_constants(rw)
    seen: dict[tuple[str, tuple[str, ...], Attrs], Node] = {}

    def visit(rw: Rewriter, node: Node) -> bool:
        key = (node.op, node.inputs, node.attrs)
        if key not in seen:
            seen[key] = node
            return False
        return rw.replace(node, seen[key].outputs)

    return rewrite(graph, visit, rw)[0]

"""Algebraic simplification: rewrite rules by op, applied in sweeps until nothing changes.

The rules here remove no-ops (identity, same-shape reshape, identity transpose, whole
slice, zero pad, same-dtype cast, x * 1, x + 0), collapse reshape and transpose chains,
turn x ** 2 and x ** 3 into multiplies and a gather at one constant index into a slice;
`channel_affine` adds batch-norm and per-channel scale/bias folding. Every rule is exact up
to float rounding of folded constants, and only rewrites a producer its consumer is the
only reader of.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepc.ir.graph import Graph, Node
from deepc.passes.channel_affine import AFFINE_RULES
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.move_chains import moves_to_reshape
from deepc.passes.rewriter import Rewriter, rewrite

Rule = Callable[[Rewriter, Node], bool]
MAX_SWEEPS = 16  # each sweep shortens the graph or a chain; real models settle in 2 or 3


def ints(node: Node, key: str) -> tuple[int, ...]:
    return tuple(int(v) for v in node.attrs[key])  # type: ignore[union-attr]


def same_type(rw: Rewriter, node: Node, value: str) -> bool:
    return rw.type(node.outputs[0]) == rw.type(value)


def identity(rw: Rewriter, node: Node) -> bool:
    return rw.replace(node, node.inputs[0])


def reshape(rw: Rewriter, node: Node) -> bool:
    """A reshape to the input's shape goes; a reshape of a reshape reads the first input."""
    x = node.inputs[0]
    inner = rw.producer_of(x)
    if inner is not None and inner.op == "reshape":
        x = inner.inputs[0]
    if same_type(rw, node, x):
        return rw.replace(node, x)
    if x == node.inputs[0]:
        return False
    rw.drop(node)
    rw.emit("reshape", [x], node.attrs, outputs=node.outputs, name=node.name)
    return True


def moves_unit_axes_only(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """Whether the transpose keeps the order of the axes longer than 1 (a reshape)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def transpose(rw: Rewriter, node: Node) -> bool:
    """Transposes compose; the identity permutation goes; a permutation that only moves
    axes of length 1 becomes a reshape (which then merges with neighbouring reshapes)."""
    x, perm = node.inputs[0], ints(node, "perm")
    inner = rw.producer_of(x)
    if inner is not None and inner.op == "transpose":
        first = ints(inner, "perm")
        x, perm = inner.inputs[0], tuple(first[p] for p in perm)
    if perm == tuple(range(len(perm))):
        return rw.replace(node, x)
    out = rw.type(node.outputs[0])
    if moves_unit_axes_only(rw.type(x).shape, perm):
        rw.drop(node)
        rw.emit("reshape", [x], {"shape": out.shape}, outputs=node.outputs, name=node.name)
        return True
    if x == node.inputs[0]:
        return False
    rw.drop(node)
    rw.emit("transpose", [x], {"perm": perm}, outputs=node.outputs, name=node.name)
    return True


def whole_slice(rw: Rewriter, node: Node) -> bool:
    if same_type(rw, node, node.inputs[0]) and all(s == 1 for s in ints(node, "steps")):
        return rw.replace(node, node.inputs[0])
    return False


def zero_pad(rw: Rewriter, node: Node) -> bool:
    if all(p == 0 for p in ints(node, "pads")):
        return rw.replace(node, node.inputs[0])
    return False


def same_dtype_cast(rw: Rewriter, node: Node) -> bool:
    if same_type(rw, node, node.inputs[0]):
        return rw.replace(node, node.inputs[0])
    return False


def neutral(element: int, commutes: bool) -> Rule:
    """x op c -> x when c is all `element` and the result has x's type (no broadcast to a
    bigger shape, no dtype promotion); also c op x for commutative ops."""
    def rule(rw: Rewriter, node: Node) -> bool:
        a, b = node.inputs
        for x, c in ((a, b), (b, a)) if commutes else ((a, b),):
            value = rw.const(c)
            if value is not None and same_type(rw, node, x) and np.all(value == element):
                return rw.replace(node, x)
        return False

    return rule


def small_power(rw: Rewriter, node: Node) -> bool:
    """x ** 2 -> x * x and x ** 3 -> x * x * x (GELU's tanh form): multiplies stay in
    vector registers where pow is a libm call per lane."""
    x, c = node.inputs
    value = rw.const(c)
    if value is None or not same_type(rw, node, x) or value.size == 0:
        return False
    power = value.flat[0]
    if power not in (2, 3) or not np.all(value == power):
        return False
    rw.drop(node)
    if power == 2:
        rw.emit("mul", [x, x], outputs=node.outputs, name=node.name)
    else:
        (square,) = rw.emit("mul", [x, x], name=f"{node.name}:square")
        rw.emit("mul", [square, x], outputs=node.outputs, name=node.name)
    return True


def constant_gather(rw: Rewriter, node: Node) -> bool:
    """A gather at one constant index (q, k, v = qkv[0], qkv[1], qkv[2]) is a slice, then a
    reshape where the gather drops the axis: contiguous vectors, where the gather reads its
    index at run time and so loads every lane on its own."""
    data, idx = node.inputs
    value = rw.const(idx)
    shape = rw.type(data).shape
    if value is None or value.size != 1 or not shape:
        return False
    axis = int(node.attrs["axis"]) % len(shape)
    i = int(value.flat[0])
    i += shape[axis] if i < 0 else 0
    if not 0 <= i < shape[axis]:
        return False  # out of range: the gather's own rule says what happens
    out = rw.type(node.outputs[0])
    rw.drop(node)
    part = {"axes": (axis,), "starts": (i,), "ends": (i + 1,), "steps": (1,)}
    if out.shape[axis:axis + 1] == (1,) and out.rank == len(shape):
        rw.emit("slice", [data], part, outputs=node.outputs, name=node.name)
    else:
        (piece,) = rw.emit("slice", [data], part, name=f"{node.name}:slice")
        rw.emit("reshape", [piece], {"shape": out.shape}, outputs=node.outputs, name=node.name)
    return True


NOOP_RULES: dict[str, list[Rule]] = {
    "identity": [identity],
    "reshape": [reshape, moves_to_reshape],
    "transpose": [transpose, moves_to_reshape],
    "slice": [whole_slice],
    "pad": [zero_pad],
    "cast": [same_dtype_cast],
    "mul": [neutral(1, commutes=True)],
    "add": [neutral(0, commutes=True)],
    "sub": [neutral(0, commutes=False)],
    "div": [neutral(1, commutes=False)],
    "pow": [small_power],
    "gather": [constant_gather],
}
RULES: dict[str, list[Rule]] = {op: NOOP_RULES.get(op, []) + AFFINE_RULES.get(op, [])
                                for op in {*NOOP_RULES, *AFFINE_RULES}}


def visit(rw: Rewriter, node: Node) -> bool:
    return any(rule(rw, node) for rule in RULES.get(node.op, ()))


@register_pass("simplify")
def simplify(graph: Graph, ctx: PassContext) -> Graph:
    for _ in range(MAX_SWEEPS):
        graph, changed = rewrite(graph, visit)
        if not changed:
            break
    return graph

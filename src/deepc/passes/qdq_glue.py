"""The `qdq_glue` pass: the float ops between a QDQ model's integer kernels (dequantize ->
relu/clip/sigmoid/SiLU/max_pool/reshape/transpose/slice/concat/add/softmax -> quantize) become int8
ops, so the int8 graph stays int8 from one integer kernel to the next.

    q_x -> dequantize -> f (elementwise) -> quantize  =>  lookup(q_x, Q(f(DQ(0..255))))
                                                          or requantize(q_x - zx) where exact
    q_x -> dequantize -> max_pool/reshape/... -> quantize  =>  max_pool/reshape/...(bytes)
    dequantize(q_a), dequantize(q_b) -> add -> quantize    =>  quantized_add(q_a, q_b)
    q_x -> dequantize -> softmax -> quantize              =>  quantized_softmax(q_x)

A quantize commutes with data movement (it maps each element alone), with concat (each part
quantizes alone) and with max_pool (it is monotone), so it moves up through them to the
dequantizes, where the pair dequantize -> quantize (with anything elementwise between) is a
function of one byte: a 256-entry table evaluated at compile time with the ops' numpy
references, which are the ONNX arithmetic onnxruntime runs in float for these ops. A table
that a requantize reproduces at every byte becomes that requantize (vector arithmetic where
a table reads scalar bytes; not where tables are vpermi2b permutes, AVX-512 VBMI), applied
before the reshapes after an integer kernel so that it
joins the kernel's epilogue; a max_pool pools the bytes before a nondecreasing function and
each part of a channel concat alone. An add of two dequantized values is onnxruntime's
QLinearAdd (ops/quant_glue.py), a softmax its QLinearSoftmax (ops/quant_softmax.py); a
costly float function of one dequantized value (the
sigmoid of a squeeze-excite gate, SiLU) becomes a float table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import np_dtype
from deepc.ops import FusionKind, get_op
from deepc.ops.quant import INT_RANGES
from deepc.ops.quant_softmax import output_factor, softmax_table
from deepc.passes.column_stride import unit_column_stride
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.move_chains import (
    elementwise_before_moves,
    lookup_before_move,
    moves_to_reshape,
    op_before_transpose,
    own_table_reads,
    pool_channels_last,
    transposed_bytes,
)
from deepc.passes.qdq_match import QTYPES, Params, dequantized, per_tensor, qlinear_add_attrs
from deepc.passes.rewriter import Rewriter, rewrite

# one data input, the rest constant: each output element is one input element
MOVES = frozenset({"reshape", "transpose", "squeeze", "unsqueeze", "slice", "identity",
                   "depth_to_space", "space_to_depth", "max_pool"})
# what an integer kernel's result goes through to its NCHW shape (qdq_dot's epilogue)
BYTE_MOVES = frozenset({"reshape", "transpose", "slice"})
# elementwise ops a table may hold; the others read indices or reinterpret bits
NOT_TABULATED = frozenset({"requantize", "broadcast_to", "trilu", "bitcast"})
# float functions of one value dearer than a table read (exp, division, polynomials)
COSTLY = frozenset({"sigmoid", "tanh", "exp", "erf", "gelu", "softplus", "mish", "elu", "selu",
                    "celu", "log", "hard_sigmoid", "hard_swish", "softsign", "reciprocal"})
# float values worth a table when a costly op is among what makes them (SiLU: its sigmoid,
# then the product x * sigmoid(x) as one table)
TABLE_ROOTS = COSTLY | {"mul", "add", "sub", "div", "clip", "relu", "min", "max"}
MAX_TABLE_NODES = 16  # a table's expression: SiLU and GELU take 2 to 6 nodes


def _tabulable(rw: Rewriter, node: Node) -> bool:
    op = get_op(node.op)
    return len(node.outputs) == 1 and node.op not in NOT_TABULATED and (
        op.kind in (FusionKind.ELEMWISE, FusionKind.BROADCAST)
        or node.op in ("dequantize_linear", "quantize_linear"))


def _tree(rw: Rewriter, root: Node) -> tuple[str, list[Node]] | None:
    """The one int8/uint8 value `root` is a function of, through tabulable ops whose other
    inputs are scalar constants (a lookup's table too), and those ops in evaluation order."""
    order: list[Node] = []
    seen: set[str] = set()
    source: list[str] = []

    def walk(node: Node, depth: int = 0) -> bool:
        if node.outputs[0] in seen:
            return True
        # the ops are appended after their inputs: the depth bounds a long chain's recursion
        if len(order) >= MAX_TABLE_NODES or depth >= MAX_TABLE_NODES:
            return False
        for k, i in enumerate(node.inputs):
            c = rw.const(i)
            if not i or (c is not None and (c.size == 1 or (node.op == "lookup" and k == 1))):
                continue
            p = rw.producer_of(i)
            byte = rw.type(i).dtype in QTYPES
            # a byte value is the source, unless a byte function made it (tables compose)
            if c is None and p is not None and _tabulable(rw, p) \
                    and (not byte or _byte_function(rw, p)):
                if not walk(p, depth + 1):
                    return False
            elif c is not None or not byte \
                    or source not in ([], [rw.resolve(i)]):
                return False
            else:
                source[:] = [rw.resolve(i)]
        seen.add(node.outputs[0])
        order.append(node)
        return True

    if not walk(root) or not source \
            or rw.type(root.outputs[0]).shape != rw.type(source[0]).shape:
        return None
    return source[0], order


def _byte_function(rw: Rewriter, node: Node) -> bool:
    """Whether node's bytes are a function of other bytes alone: a table, or a quantized add
    of a scalar constant (GELU's erf + 1, a QLinearAdd that fold_qdq made)."""
    return node.op == "lookup" or (node.op == "quantized_add" and any(
        (c := rw.const(i)) is not None and c.size == 1 for i in node.inputs))


def _table(rw: Rewriter, source: str, order: list[Node]) -> np.ndarray:
    """The tree's value at each of the 256 source values, by the ops' numpy references."""
    dtype = rw.type(source).dtype
    lo = INT_RANGES[dtype][0]
    values = {source: np.arange(lo, lo + 256).astype(np_dtype(dtype))}
    with np.errstate(all="ignore"):
        for node in order:
            ins = []
            for i in node.inputs:
                c = rw.const(i)
                ins.append(None if not i else values[rw.resolve(i)] if c is None
                           else c.reshape(()) if c.size == 1 else c)
            values[node.outputs[0]] = get_op(node.op).evaluate(ins, node.attrs)[0]
    out = values[order[-1].outputs[0]]
    return np.broadcast_to(out, (256,)).astype(np_dtype(rw.type(order[-1].outputs[0]).dtype))


def _lookup(rw: Rewriter, source: str, table: np.ndarray, name: str) -> str:
    """source through `table`; source itself where the table is the identity."""
    dtype = rw.type(source).dtype
    lo = INT_RANGES[dtype][0]
    if str(table.dtype) == dtype and np.array_equal(table.astype(np.int32),
                                                    np.arange(lo, lo + 256)):
        return source
    t = rw.add_constant(table, f"{name}:table")
    return rw.emit("lookup", [source, t], name=name)[0]


def _requantized(rw: Rewriter, tree: tuple[str, list[Node]], table: np.ndarray, p: Params,
                 name: str, at: str) -> str | None:
    """The table as a requantize of (source - zero point), clamped to the table's range,
    where that gives every entry: dequantize -> relu/clip -> quantize at a new scale mostly
    does, and vector arithmetic beats a gather of scalar byte loads (a 96x112x112 table:
    0.7 ms). The multiplier is sx / sy in float32 or a float32 step beside it. It applies to
    `at`: the source, or bytes pooled from it."""
    source, order = tree
    dq = [n for n in order if n.op == "dequantize_linear" and rw.resolve(n.inputs[0]) == source]
    x = dequantized(rw, dq[0].outputs[0]) if len(dq) == 1 else None
    if x is None or not per_tensor(x):
        return None
    dtype = rw.type(source).dtype
    lo = INT_RANGES[dtype][0]
    acc = np.arange(lo, lo + 256, dtype=np.int32) - np.int32(x.zero[0])
    bounds = int(table.astype(np.int32).min()), int(table.astype(np.int32).max())
    m = np.float32(x.scale[0]) / np.float32(p[0])
    for mult in (m, np.nextafter(m, np.float32(0)), np.nextafter(m, np.float32(np.inf))):
        y = np.clip(np.rint(acc.astype(np.float32) * mult) + np.float32(p[1]), *bounds)
        if np.array_equal(y, table.astype(np.float32)):
            break
    else:
        return None
    centred = rw.emit("cast", [at], {"to": "int32"}, name=name)[0]
    if int(x.zero[0]):
        zero = rw.add_constant(np.array(x.zero[0], np.int32), f"{name}:zero")
        centred = rw.emit("sub", [centred, zero], name=name)[0]
    return rw.emit("requantize", [centred, rw.add_constant(np.float32(mult), f"{name}:mult"),
                                  rw.add_constant(np.array(p[1], np_dtype(p[2])),
                                                  f"{name}:zero")],
                   {"axis": 0, "to": p[2], "min": bounds[0], "max": bounds[1]}, name=name)[0]


def _quantize_node(rw: Rewriter, value: str, p: Params, name: str) -> str:
    s = rw.add_constant(np.float32(p[0]), f"{name}:scale")
    z = rw.add_constant(np.array(p[1], np_dtype(p[2])), f"{name}:zero")
    return rw.emit("quantize_linear", [value, s, z], {"to": p[2], "axis": 0}, name=name)[0]


class _Glue:
    """Quantizes values at given parameters in int8 where it can, remembering each result
    (a value quantized at two scales is two tables)."""

    def __init__(self, rw: Rewriter, byte_permutes: bool = False):
        self.rw = rw
        self.done: dict[tuple[str, Params], str | None] = {}
        # tables compile to vpermi2b permutes (AVX-512 VBMI): a table beats the requantize's
        # float arithmetic (a byte widened to four vectors, converted, rounded, narrowed):
        # mobilenet_v2's ReLU6 requantizes after its convs as tables: 3.01 -> 2.40 ms
        self.byte_permutes = byte_permutes

    def quantized(self, value: str, p: Params, name: str) -> str | None:
        """An int8/uint8 value equal to quantize(value) at p, built from integer values,
        or None where value is no such function of dequantized ones."""
        key = (self.rw.resolve(value), p)
        if key not in self.done:
            self.done[key] = self._quantized(value, p, name)
        return self.done[key]

    def _quantized(self, value: str, p: Params, name: str) -> str | None:
        rw = self.rw
        node = rw.producer_of(value)
        if node is None:
            return None
        if _tabulable(rw, node):
            tree = _tree(rw, node)
            if tree is not None:
                return self._tabled(tree, _quantize(_table(rw, *tree), p), p, name, tree[0])
        if node.op in MOVES and len(node.outputs) == 1 \
                and all(rw.const(i) is not None for i in node.inputs[1:] if i):
            return self._move(node, p, name)
        if node.op == "concat":
            parts = [self.quantized(i, p, name) for i in node.inputs]
            if all(r is None for r in parts):
                return None
            return rw.emit("concat", [r or _quantize_node(rw, i, p, name)
                                      for i, r in zip(node.inputs, parts)],
                           dict(node.attrs), name=node.name)[0]
        if node.op == "add":
            return self._add(node, p, name)
        if node.op == "softmax":
            return self._softmax(node, p, name)
        return None

    def _tabled(self, tree: tuple[str, list[Node]], table: np.ndarray, p: Params, name: str,
                at: str) -> str:
        """The byte function `table` of tree's source, applied to `at`, beneath the reshapes
        and transposes that made `at` from an integer kernel's result: elementwise, it
        commutes with them, and next to the kernel it joins its epilogue (one pass over the
        bytes fewer)."""
        rw = self.rw
        moves, inner = [], at
        while (made := rw.producer_of(inner)) is not None and made.op in BYTE_MOVES:
            moves.append(made)
            inner = made.inputs[0]
        y = (None if self.byte_permutes else _requantized(rw, tree, table, p, name, inner)) \
            or _lookup(rw, inner, table, name)
        if y == inner:  # the identity
            return at
        for made in reversed(moves):
            y = rw.emit(made.op, [y], dict(made.attrs), name=made.name)[0]
        return y

    def _move(self, node: Node, p: Params, name: str) -> str | None:
        """A move of the quantized input."""
        if node.op == "max_pool":
            return self._pooled(node.inputs[0], node, p, name)
        inner = self.quantized(node.inputs[0], p, name)
        if inner is None:
            return None
        return self.rw.emit(node.op, [inner, *node.inputs[1:]], dict(node.attrs),
                            name=node.name)[0]

    def _pooled(self, value: str, pool: Node, p: Params, name: str) -> str | None:
        """quantize(max_pool(value)) at p. Max commutes with a nondecreasing function of one
        byte value (the bytes pool first, the function reads the fewer pooled ones) and with
        a channel concat (each part pools alone: read through the concat, every tap of the
        pool would pick its part in scalar code, squeezenet's fire outputs at 1 GFLOP/s)."""
        rw = self.rw
        made = rw.producer_of(value)
        if made is not None and made.op == "concat" and int(made.attr("axis", 0)) == 1:
            parts = [self._pooled(i, pool, p, name) for i in made.inputs]
            if any(r is None for r in parts):
                return None
            return rw.emit("concat", parts, dict(made.attrs), name=made.name)[0]
        tree = _tree(rw, made) if made is not None and _tabulable(rw, made) else None
        table = _quantize(_table(rw, *tree), p) if tree is not None else None
        if tree is not None and np.all(np.diff(table.astype(np.int32)) >= 0):
            return self._tabled(tree, table, p, name, _max_pool(rw, pool, tree[0]))
        inner = self.quantized(value, p, name)
        return None if inner is None else _max_pool(rw, pool, inner)

    def _add(self, node: Node, p: Params, name: str) -> str | None:
        """onnxruntime's QLinearAdd of two dequantized values (qdq_match.py)."""
        rw = self.rw
        a, b = (dequantized(rw, i) for i in node.inputs)
        attrs = None if a is None or b is None else qlinear_add_attrs(rw, a, b, p)
        return None if attrs is None else \
            rw.emit("quantized_add", [a.value, b.value], attrs, name=name)[0]

    def _softmax(self, node: Node, p: Params, name: str) -> str | None:
        """onnxruntime's QLinearSoftmax (ops/quant_softmax.py) of a per-tensor dequantized
        value into the quantize's own type, which it runs where the softmax feeds only the
        quantize."""
        rw = self.rw
        x = dequantized(rw, node.inputs[0])
        if x is None or not per_tensor(x) or rw.type(x.value).dtype != p[2] \
                or not rw.only_use(node.outputs[0]):
            return None
        axis = int(node.attr("axis"))
        table = softmax_table(float(x.scale[0]), rw.type(x.value).shape[axis])
        return rw.emit("quantized_softmax", [x.value, rw.add_constant(table, f"{name}:exp")],
                       {"axis": axis, "factor": output_factor(p[0]), "zero": p[1], "to": p[2]},
                       name=name)[0]


def _max_pool(rw: Rewriter, node: Node, x: str) -> str:
    """node's max_pool of bytes x, at column stride 1 and sliced where it has a column stride
    (column_stride.py)."""
    attrs = dict(node.attrs)
    pooled = pool_channels_last(rw, "max_pool", attrs, x, node.name)
    if pooled is not None:
        return pooled
    xt = rw.type(x)
    out = get_op("max_pool").infer_types([xt], Attrs(attrs))[0]  # x may be a part of node's
    strided = unit_column_stride(attrs, attrs["kernel_shape"], xt.shape, out.shape)
    if strided is None:
        return rw.emit("max_pool", [x], attrs, name=node.name)[0]
    rows = rw.emit("max_pool", [x], strided[0], name=node.name)[0]
    return rw.emit("slice", [rows], strided[1], name=node.name)[0]


def _quantize(values: np.ndarray, p: Params) -> np.ndarray:
    """quantize_linear's reference at p (the table's last step)."""
    return get_op("quantize_linear").evaluate(
        [values, np.float32(p[0]), np.array(p[1], np_dtype(p[2]))],
        Attrs({"to": p[2], "axis": 0}))[0]


def _params(rw: Rewriter, q: Node) -> Params | None:
    """A quantize's constant per-tensor (scale, zero point, type) to int8/uint8."""
    s = rw.const(q.inputs[1])
    z = rw.const(q.inputs[2]) if len(q.inputs) > 2 else None
    to = str(q.attr("to"))
    if s is None or z is None or s.size != 1 or s.dtype != np.float32 or to not in QTYPES \
            or int(q.attr("block_size", 0)) or not float(s.reshape(())) > 0:
        return None
    return float(s.reshape(())), int(z.reshape(())), to


def _visit(glue: _Glue) -> Callable[[Rewriter, Node], bool]:
    def visit(rw: Rewriter, node: Node) -> bool:
        if node.op == "quantize_linear":
            p = _params(rw, node)
            r = glue.quantized(node.inputs[0], p, node.name) if p else None
            return r is not None and rw.replace(node, r)
        if node.op in TABLE_ROOTS and _tabulable(rw, node):
            tree = _tree(rw, node)
            # a table among its ops (SiLU's sigmoid, tabulated first): one table for both
            if tree is None or not any(n.op in COSTLY or n.op == "lookup" for n in tree[1]) \
                    or not rw.type(node.outputs[0]).dtype.startswith("float"):
                return False
            table = _table(rw, *tree)
            rw.drop(node)
            t = rw.add_constant(table, f"{node.outputs[0]}:table")
            rw.emit("lookup", [tree[0], t], outputs=node.outputs, name=node.name)
            return True
        return False

    return visit


@register_pass("qdq_glue")
def qdq_glue(graph: Graph, ctx: PassContext) -> Graph:
    """Each quantize of a function of dequantized values becomes int8 ops (tables, moves,
    quantized adds); each costly float function of one dequantized value, a float table."""
    rw = Rewriter(graph)
    target = ctx.target
    permutes = target is not None and target.kind == "cpu" and target.has_feature("avx512vbmi")
    graph = rewrite(graph, _visit(_Glue(rw, permutes)), rw)[0]
    # the moved quantizes (and tables, moved up here) leave transposes to NCHW and back
    # (int8 depthwise convs run channels-last) next to each other: one reshape
    graph = _cancel_moves(graph, lambda r, node: lookup_before_move(r, node)
                          or elementwise_before_moves(r, node))
    # ops between such transposes (a squeeze-and-excitation block's pool and scale) move
    # before them too, where that leaves fewer bytes transposed
    moved = _cancel_moves(graph, op_before_transpose)
    if transposed_bytes(moved) < transposed_bytes(graph):
        graph = rewrite(moved, own_table_reads)[0]
    return graph


def _cancel_moves(graph: Graph, rule: Any) -> Graph:
    for _ in range(MAX_TABLE_NODES):
        graph, changed = rewrite(graph, rule)
        if not changed:
            break
    return rewrite(graph, lambda r, node: node.op in ("reshape", "transpose")
                   and moves_to_reshape(r, node))[0]

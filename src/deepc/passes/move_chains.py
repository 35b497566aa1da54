"""Rules for chains of data moves: a chain of reshapes and transposes whose composite keeps
every element in place (transpose, reshape, transpose back) becomes one reshape of the
chain's input (a simplify rule); a byte table lookup after a move, an elementwise op whose
operands went through the same moves, and an elementwise op or a global average pool of a
transposed operand (the others broadcast) move before them; a pool of channels-last values
transposed to NCHW pools them where they are.

The int8 passes leave such chains where a pixel-major [pixels, channels] GEMM result is
transposed to NCHW and a channels-last depthwise conv transposes it back; each transpose is
a kernel copying the tensor, the reshape is free. The composite is found by moving the
indices 0..n-1 through the chain, so any mix of the two ops is caught.
"""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Graph, Node
from deepc.ir.types import itemsize
from deepc.ops.registry import FusionKind, get_op
from deepc.passes.rewriter import Rewriter

MOVES = ("reshape", "transpose")
MAX_ELEMENTS = 1 << 22  # the index array costs 8 bytes an element at compile time
MAX_CHAIN = 8
TO_CHANNELS_FIRST = (0, 3, 1, 2)  # NHWC -> NCHW: int8 kernels run channels-last
MIN_POOL_CHANNELS = 16  # bytes a pixel: fewer leave a channels-last pool's vectors part-empty


def moves_to_reshape(rw: Rewriter, node: Node) -> bool:
    chain = [node]
    while len(chain) < MAX_CHAIN:
        inner = rw.producer_of(chain[-1].inputs[0])
        if inner is None or inner.op not in MOVES:
            break
        chain.append(inner)
    if len(chain) < 2 or not any(n.op == "transpose" for n in chain[1:]):
        return False
    root = chain[-1].inputs[0]
    shape = rw.type(root).shape
    size = int(np.prod(shape, dtype=np.int64))
    if size > MAX_ELEMENTS:
        return False
    index = np.arange(size).reshape(shape)
    for n in reversed(chain):
        index = index.transpose(n.attrs["perm"]) if n.op == "transpose" \
            else index.reshape(rw.type(n.outputs[0]).shape)
    if not np.array_equal(index.ravel(), np.arange(size)):
        return False
    rw.drop(node)
    rw.emit("reshape", [root], {"shape": rw.type(node.outputs[0]).shape},
            outputs=node.outputs, name=node.name)
    return True


def lookup_before_move(rw: Rewriter, node: Node) -> bool:
    """lookup(move(x)) -> move(lookup(x)): a table applies to each byte wherever it sits, and
    before the move it joins the kernel that makes x (a conv's epilogue) while the moves
    can meet the ones after them (and cancel)."""
    move = rw.producer_of(node.inputs[0])
    if node.op != "lookup" or move is None or move.op not in MOVES \
            or not rw.only_use(node.inputs[0]) \
            or itemsize(rw.type(node.outputs[0]).dtype) > itemsize(rw.type(move.outputs[0]).dtype):
        return False  # a float table's values would move 4 bytes each
    rw.drop(node)
    rw.drop(move)
    y = rw.emit("lookup", [move.inputs[0], *node.inputs[1:]], name=node.name)[0]
    rw.emit(move.op, [y], move.attrs, outputs=node.outputs, name=move.name)
    return True


def _moves(rw: Rewriter, value: str) -> tuple[str, list[Node]]:
    """The value the moves making `value` start from, and those moves, last first."""
    chain: list[Node] = []
    node = rw.producer_of(value)
    while node is not None and node.op in MOVES and len(chain) < MAX_CHAIN:
        chain.append(node)
        value = node.inputs[0]
        node = rw.producer_of(value)
    return value, chain


def elementwise_before_moves(rw: Rewriter, node: Node) -> bool:
    """op(move(a), move(b)) -> move(op(a, b)) for an elementwise op of same-shaped operands
    that went through the same moves (quantized_add of two NCHW views of channels-last
    bytes): the op runs where its operands are, and its result's moves can meet the next
    ones."""
    if len(node.outputs) != 1 or len(node.inputs) < 2 \
            or get_op(node.op).kind not in (FusionKind.ELEMWISE, FusionKind.BROADCAST):
        return False
    shape = rw.type(node.outputs[0]).shape
    data = [i for i in node.inputs if i and rw.const(i) is None]
    if len(data) < 2 or any(rw.type(i).shape != shape for i in data) \
            or any(rw.const(i) is not None and rw.const(i).size != 1 for i in node.inputs if i):
        return False
    chains = {i: _moves(rw, i) for i in data}
    first = chains[data[0]][1]
    key = [(n.op, n.attrs, rw.type(n.outputs[0]).shape) for n in first]
    roots = {i: root for i, (root, _) in chains.items()}
    if not first or len({rw.type(r).shape for r in roots.values()}) != 1 or any(
            [(n.op, n.attrs, rw.type(n.outputs[0]).shape) for n in c] != key
            for _, c in chains.values()):
        return False
    rw.drop(node)  # the moves stay for their other readers, else go as dead code
    y = rw.emit(node.op, [roots.get(i, i) for i in node.inputs], node.attrs,
                name=node.name)[0]
    for n in reversed(first[1:]):
        y = rw.emit(n.op, [y], n.attrs, name=n.name)[0]
    rw.emit(first[0].op, [y], first[0].attrs, outputs=node.outputs, name=first[0].name)
    return True


ELEMENTWISE = (FusionKind.ELEMWISE, FusionKind.BROADCAST)
SCALAR_PARAMS = frozenset({"quantize_linear", "dequantize_linear"})  # elementwise per tensor


def _transposed(rw: Rewriter, value: str) -> Node | None:
    node = rw.producer_of(value)
    return node if node is not None and node.op == "transpose" else None


def op_before_transpose(rw: Rewriter, node: Node) -> bool:
    """op(transpose(a), b) -> transpose(op(a, b')) where b broadcasts (b' = b with its axes
    in a's order), and global_avg_pool(transpose(a)) -> a reduce_mean of a over the axes
    that were the spatial ones: a squeeze-and-excitation block's pool and scale run where
    its channels-last input is, and the transposes meet the ones after them."""
    if node.op == "global_avg_pool":
        t = _transposed(rw, node.inputs[0])
        if t is None:
            return False
        perm = tuple(t.attrs["perm"])
        axes = tuple(sorted(perm[2:]))
        m = rw.emit("reduce_mean", [t.inputs[0]], {"axes": axes, "keepdims": 1},
                    name=node.name)[0]
        rw.drop(node)
        rw.emit("reshape", [m], {"shape": rw.type(node.outputs[0]).shape},
                outputs=node.outputs, name=node.name)
        return True
    elementwise = get_op(node.op).kind in ELEMENTWISE or node.op in SCALAR_PARAMS
    if not elementwise or len(node.outputs) != 1 or node.op == "requantize":
        return False
    shape = rw.type(node.outputs[0]).shape
    moved = [_transposed(rw, i) for i in node.inputs if i]
    first = next((t for t in moved if t is not None and rw.type(t.outputs[0]).shape == shape),
                 None)
    if first is None:
        return False
    perm = tuple(first.attrs["perm"])
    inverse = tuple(int(k) for k in np.argsort(perm))
    inputs = []
    for k, i in enumerate(node.inputs):
        t = _transposed(rw, i) if i else None
        table = node.op == "lookup" and k == 1
        if t is not None and tuple(t.attrs["perm"]) == perm \
                and rw.type(i).shape == shape:
            inputs.append(t.inputs[0])
        elif not i or table or (rw.const(i) is not None and rw.const(i).size == 1):
            inputs.append(i)
        elif rw.type(i).rank == len(perm) and rw.const(i) is None \
                and all(d in (1, s) for d, s in zip(rw.type(i).shape, shape)):
            inputs.append(rw.emit("transpose", [i], {"perm": inverse}, name=node.name)[0])
        else:
            return False
    rw.drop(node)
    y = rw.emit(node.op, inputs, node.attrs, name=node.name)[0]
    rw.emit("transpose", [y], {"perm": perm}, outputs=node.outputs, name=first.name)
    return True


def transposed_bytes(graph: Graph) -> int:
    return sum(graph.types[n.outputs[0]].nbytes for n in graph.nodes if n.op == "transpose"
               and not _unit_moves(graph, n))


def _unit_moves(graph: Graph, node: Node) -> bool:
    shape = graph.types[node.inputs[0]].shape
    moved = [p for p in node.attrs["perm"] if shape[p] != 1]  # type: ignore[union-attr]
    return moved == sorted(moved)


def own_table_reads(rw: Rewriter, node: Node) -> bool:
    """A float table lookup read by several ops: each reads its own copy, so that each copy
    fuses into its reader (a table read per element) instead of a kernel writing 4 bytes
    an element for them all to read back."""
    for k, i in enumerate(node.inputs):
        table = rw.producer_of(i) if i else None
        if table is None or table.op != "lookup" or rw.only_use(i) \
                or itemsize(rw.type(i).dtype) <= itemsize(rw.type(table.inputs[0]).dtype):
            continue
        copy = rw.emit("lookup", list(table.inputs), table.attrs, name=table.name)[0]
        rw.drop(node)
        rw.emit(node.op, [*node.inputs[:k], copy, *node.inputs[k + 1:]], node.attrs,
                outputs=node.outputs, name=node.name)
        return True
    return False


def pool_channels_last(rw: Rewriter, op: str, attrs: dict, x: str, name: str) -> str | None:
    """op(transpose(a, NHWC -> NCHW)) for a channels-last a[1, H, W, C] of at least
    MIN_POOL_CHANNELS: the pool of a as one channel block [1, 1, H, W, C] (layout NCHWc), the
    channels in the vector lanes, strided windows read as they are (no column-stride copy),
    its result moved back to NCHW, where that move can meet the next ones and cancel. None
    where x is no such transpose."""
    node = rw.producer_of(x)
    while node is not None and node.op == "reshape" \
            and rw.type(node.inputs[0]).shape == rw.type(x).shape:
        node = rw.producer_of(node.inputs[0])
    if node is None or node.op != "transpose" \
            or tuple(node.attrs["perm"]) != TO_CHANNELS_FIRST:
        return None
    a = node.inputs[0]
    n, h, w, c = rw.type(a).shape
    if n != 1 or c < MIN_POOL_CHANNELS:
        return None
    block = rw.emit("reshape", [a], {"shape": (1, 1, h, w, c)}, name=name)[0]
    pooled = rw.emit(op, [block], {**attrs, "layout": "NCHWc"}, name=name)[0]
    _, _, oh, ow, _ = rw.type(pooled).shape
    flat = rw.emit("reshape", [pooled], {"shape": (1, oh, ow, c)}, name=name)[0]
    return rw.emit("transpose", [flat], {"perm": TO_CHANNELS_FIRST}, name=name)[0]

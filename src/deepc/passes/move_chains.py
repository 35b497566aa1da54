"""Rules for chains of data moves: a chain of reshapes and transposes whose composite keeps
every element in place (transpose, reshape, transpose back) becomes one reshape of the
chain's input (a simplify rule); a byte table lookup after a move moves before it.

The int8 passes leave such chains where a pixel-major [pixels, channels] GEMM result is
transposed to NCHW and a channels-last depthwise conv transposes it back; each transpose is
a kernel copying the tensor, the reshape is free. The composite is found by moving the
indices 0..n-1 through the chain, so any mix of the two ops is caught.
"""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Node
from deepc.passes.rewriter import Rewriter

MOVES = ("reshape", "transpose")
MAX_ELEMENTS = 1 << 22  # the index array costs 8 bytes an element at compile time
MAX_CHAIN = 8


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
            or not rw.only_use(node.inputs[0]):
        return False
    rw.drop(node)
    rw.drop(move)
    y = rw.emit("lookup", [move.inputs[0], *node.inputs[1:]], name=node.name)[0]
    rw.emit(move.op, [y], move.attrs, outputs=node.outputs, name=move.name)
    return True

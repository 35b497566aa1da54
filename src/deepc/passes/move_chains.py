"""A simplify rule: a chain of reshapes and transposes whose composite keeps every element
in place (transpose, reshape, transpose back) becomes one reshape of the chain's input.

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

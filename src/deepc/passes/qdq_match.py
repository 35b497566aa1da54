"""What the QDQ folds match: dequantized operands with constant parameters, and the float op
between them and a quantize (through an optional relu)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepc.ir.graph import Node
from deepc.passes.rewriter import Rewriter

QTYPES = frozenset({"int8", "uint8"})


@dataclass(frozen=True)
class Quantized:
    """A dequantize node's operand: the int8/uint8 value and its constant parameters."""

    value: str
    scale: np.ndarray  # float32, scalar or one per entry along `axis`
    zero: np.ndarray  # the value's dtype, same shape as scale
    axis: int


def dequantized(rw: Rewriter, value: str) -> Quantized | None:
    node = rw.producer_of(value)
    if node is None or node.op != "dequantize_linear" or int(node.attr("block_size", 0)):
        return None
    q, s = node.inputs[0], rw.const(node.inputs[1])
    zname = node.inputs[2] if len(node.inputs) > 2 else ""
    z = rw.const(zname) if zname else np.zeros_like(s, dtype=rw.type(q).dtype) if s is not None \
        else None
    if s is None or z is None or rw.type(q).dtype not in QTYPES or s.dtype != np.float32 \
            or rw.type(node.outputs[0]).dtype != "float32":
        return None
    return Quantized(q, s.reshape(-1), z.reshape(-1), int(node.attr("axis", 1)))


def per_tensor(q: Quantized) -> bool:
    return q.scale.size == 1


def per_channel(q: Quantized, axis: int, channels: int) -> bool:
    """Per tensor, or one parameter per output channel (on `axis` of the weight)."""
    return q.scale.size == 1 or (q.axis == axis and q.scale.size == channels)


@dataclass(frozen=True)
class Chain:
    """The float op between the dequantizes and the quantize, read back to front."""

    quantize: Node
    relu: bool
    op: Node


def chain_of(rw: Rewriter, q: Node) -> Chain | None:
    y = q.inputs[0]
    node = rw.producer_of(y)
    relu = node is not None and node.op == "relu"
    if relu:
        if not rw.only_use(y):
            return None
        y = node.inputs[0]
        node = rw.producer_of(y)
    if node is None or node.op not in ("conv", "matmul", "gemm") or not rw.only_use(y):
        return None
    return Chain(q, relu, node)


def drop_chain(rw: Rewriter, chain: Chain) -> None:
    """Forget the quantize, the relu and the op: a rewrite emits their replacement."""
    q = chain.quantize
    rw.drop(q)
    if chain.relu:
        rw.drop(rw.producer_of(q.inputs[0]))  # type: ignore[arg-type]
    rw.drop(chain.op)

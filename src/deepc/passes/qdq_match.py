"""What the QDQ folds match: dequantized operands with constant parameters, and the float op
between them and a quantize (through an optional relu or constant clip)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepc.ir.graph import Node
from deepc.ops.quant_glue import quantized_add_params
from deepc.passes.rewriter import Rewriter

QTYPES = frozenset({"int8", "uint8"})
Params = tuple[float, int, str]  # a quantize's scale, zero point and type


@dataclass(frozen=True)
class Quantized:
    """A dequantize node's operand: the int8/uint8 value and its constant parameters."""

    value: str
    scale: np.ndarray  # float32, scalar or one per entry along `axis`
    zero: np.ndarray  # the value's dtype, same shape as scale
    axis: int


def producer(rw: Rewriter, value: str) -> Node | None:
    """value's producer, looking through identities (the quantiser shares a bias's
    DequantizeLinear between convs through them)."""
    node = rw.producer_of(value)
    while node is not None and node.op == "identity":
        node = rw.producer_of(node.inputs[0])
    return node


def dequantized(rw: Rewriter, value: str) -> Quantized | None:
    node = producer(rw, value)
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


def qlinear_add_attrs(rw: Rewriter, a: Quantized, b: Quantized, p: Params
                      ) -> dict[str, float | str] | None:
    """quantized_add's attributes for onnxruntime's QLinearAdd of dequantized a + b (either
    broadcast) quantized at p (quantized_add_params); None unless both are per tensor and of
    the quantize's type, as its QDQ fusion asks."""
    if not per_tensor(a) or not per_tensor(b) \
            or {rw.type(a.value).dtype, rw.type(b.value).dtype} != {p[2]}:
        return None
    ra, rb, fixed = quantized_add_params(a.scale[0], a.zero[0], b.scale[0], b.zero[0], *p[:2])
    return {"ratio_a": float(ra), "ratio_b": float(rb), "fixed": float(fixed), "to": p[2]}


def per_channel(q: Quantized, axis: int, channels: int) -> bool:
    """Per tensor, or one parameter per output channel (on `axis` of the weight)."""
    return q.scale.size == 1 or (q.axis == axis and q.scale.size == channels)


@dataclass(frozen=True)
class Chain:
    """The float op between the dequantizes and the quantize, read back to front, and the
    relu or constant clip between it and the quantize (`act`) with its float bounds."""

    quantize: Node
    act: Node | None
    op: Node
    lo: float | None = None
    hi: float | None = None


def _activation(node: Node | None) -> tuple[float | None, float | None] | None:
    if node is None:
        return None
    if node.op == "relu":
        return 0.0, None
    if node.op == "clip":
        lo, hi = node.attr("min", None), node.attr("max", None)
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    return None


def chain_of(rw: Rewriter, q: Node) -> Chain | None:
    y = q.inputs[0]
    node = rw.producer_of(y)
    act, bounds = None, _activation(node)
    if bounds is not None:
        if not rw.only_use(y):
            return None
        act = node
        y = node.inputs[0]  # type: ignore[union-attr]
        node = rw.producer_of(y)
    if node is None or node.op not in ("conv", "matmul", "gemm") or not rw.only_use(y):
        return None
    lo, hi = bounds or (None, None)
    return Chain(q, act, node, lo, hi)


def chain_of_activation(q: Node, act: Node) -> Chain:
    """An activation alone before a quantize (its op is the activation itself)."""
    lo, hi = _activation(act) or (None, None)
    return Chain(q, act, act, lo, hi)


def clamp_attrs(chain: Chain, scale: np.ndarray, zero: np.ndarray) -> dict[str, int]:
    """requantize's min/max: the act's bounds quantized as quantize_linear would (float32
    division, round half to even, + zero point), so clamping after rounding is the same."""
    def quantized(v: float) -> int:
        return int(np.rint(np.float32(v) / np.float32(scale))) + int(zero)

    return {k: quantized(v) for k, v in (("min", chain.lo), ("max", chain.hi)) if v is not None}


def drop_chain(rw: Rewriter, chain: Chain) -> None:
    """Forget the quantize, the activation and the op: a rewrite emits their replacement."""
    rw.drop(chain.quantize)
    if chain.act is not None:
        rw.drop(chain.act)
    rw.drop(chain.op)

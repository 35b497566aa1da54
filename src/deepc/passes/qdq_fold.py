"""The `fold_qdq` pass: DequantizeLinear -> Conv/MatMul/Gemm (-> Relu) -> QuantizeLinear chains
become integer ops (int32 accumulation) with a fused `requantize` epilogue.

    q_x -> dequantize ─┐                        q_x - zx (int32) ─┐
    q_w -> dequantize ─┼─ conv -> [relu] -> quantize   =>   w_q - zw (int32) ─┼─ conv -> requantize
    bias (float)      ─┘                            bias / (sx*sw) (int32) ─┘

The arithmetic is onnxruntime's QLinearConv/QLinearMatMul: exact int32 sums of (x - zx) *
(w - zw) plus the int32 bias, then float32(acc) * (sx * sw / sy) rounded half to even, plus
zy, saturated. A relu before the quantize becomes a floor at zy (rounding is monotone, so
quantize(relu(y)) = max(quantize(y), zy)). It runs first in the pipelines: `fold` would turn
the weights' dequantize into float constants. Chains whose parameters are not constants,
whose scales are not per tensor (activations) or per output channel (weights), or whose float
bias is not an exact multiple of sx*sw stay in float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.ir.graph import Graph, Node
from deepc.ops.qdot import to_words
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.rewriter import Rewriter, rewrite

QTYPES = frozenset({"int8", "uint8"})


@dataclass(frozen=True)
class Quantized:
    """A dequantize node's operand: the int8/uint8 value and its constant parameters."""

    value: str
    scale: np.ndarray  # float32, scalar or one per entry along `axis`
    zero: np.ndarray  # the value's dtype, same shape as scale
    axis: int


def _dequantized(rw: Rewriter, value: str) -> Quantized | None:
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


def _per_tensor(q: Quantized) -> bool:
    return q.scale.size == 1


def _per_channel(q: Quantized, axis: int, channels: int) -> bool:
    """Per tensor, or one parameter per output channel (on `axis` of the weight)."""
    return q.scale.size == 1 or (q.axis == axis and q.scale.size == channels)


def _centered(rw: Rewriter, q: Quantized, axis: int, name: str) -> str:
    """q - zero point as int32: a constant for constant q, else a cast and a subtraction."""
    value = rw.const(q.value)
    if value is not None:
        zero = q.zero.astype(np.int32)
        if zero.size > 1:
            zero = zero.reshape([-1 if k == axis else 1 for k in range(value.ndim)])
        return rw.add_constant(value.astype(np.int32) - zero, f"{q.value}:int32")
    y = rw.emit("cast", [q.value], {"to": "int32"}, name=name)[0]
    if not q.zero.any():
        return y
    z = rw.add_constant(q.zero.astype(np.int32).reshape(()), f"{q.value}:zero")
    return rw.emit("sub", [y, z], name=name)[0]


def _int_bias(bias: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The int32 bias whose dequantization (at sx*sw) gave the float `bias`, if it did."""
    ints = np.rint(bias.astype(np.float64) / scale.astype(np.float64))
    if np.abs(ints).max(initial=0) >= 2 ** 31 or \
            not np.array_equal((ints.astype(np.int32) * scale).astype(np.float32),
                               bias.astype(np.float32)):
        return None
    return ints.astype(np.int32)


def _bias(rw: Rewriter, name: str, acc_scale: np.ndarray) -> np.ndarray | None:
    """The int32 bias: a dequantized int32 constant as it is (onnxruntime adds those integers
    whatever their scale), or a float constant recovered at sx*sw."""
    dq = _dequantized_bias(rw, name)
    if dq is not None:
        return dq
    fbias = rw.const(name)
    if fbias is None or fbias.ndim != 1:
        return None
    return _int_bias(fbias, np.broadcast_to(acc_scale, fbias.shape))


def _dequantized_bias(rw: Rewriter, name: str) -> np.ndarray | None:
    node = rw.producer_of(name)
    if node is None or node.op != "dequantize_linear":
        return None
    ints = rw.const(node.inputs[0])
    zero = rw.const(node.inputs[2]) if len(node.inputs) > 2 else None
    if ints is None or ints.dtype != np.int32 or ints.ndim != 1 \
            or (zero is not None and zero.any()):
        return None
    return ints


@dataclass(frozen=True)
class Chain:
    """The float op between the dequantizes and the quantize, read back to front."""

    quantize: Node
    relu: bool
    op: Node


def _chain(rw: Rewriter, q: Node) -> Chain | None:
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


def _requantize_params(rw: Rewriter, q: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """The quantize's (scale, zero point), when constant, per tensor and to int8/uint8."""
    s = rw.const(q.inputs[1])
    z = rw.const(q.inputs[2]) if len(q.inputs) > 2 else None
    if s is None or z is None or s.size != 1 or s.dtype != np.float32 \
            or str(q.attr("to")) not in QTYPES or int(q.attr("block_size", 0)):
        return None
    return s.reshape(()), z.reshape(())


def _fold(rw: Rewriter, q: Node, ctx_target: Any) -> bool:
    chain = _chain(rw, q)
    out = _requantize_params(rw, q) if chain else None
    if chain is None or out is None:
        return False
    op = chain.op
    x, w = _dequantized(rw, op.inputs[0]), _dequantized(rw, op.inputs[1])
    if x is None or w is None or not _per_tensor(x):
        return False
    wtype = rw.type(op.inputs[1])
    if op.op == "conv":
        if op.attr("kernel_layout", "OIHW") != "OIHW":
            return False
        w_axis, out_axis = 0, 1
    elif op.op == "gemm":
        if int(op.attr("trans_a", 0)) or float(op.attr("alpha", 1.0)) != 1.0 \
                or float(op.attr("beta", 1.0)) != 1.0:
            return False
        w_axis, out_axis = (0 if int(op.attr("trans_b", 0)) else 1), 1
    else:
        w_axis, out_axis = wtype.rank - 1, rw.type(op.outputs[0]).rank - 1
    channels = rw.type(op.outputs[0]).shape[out_axis]
    if not _per_channel(w, w_axis, channels) or (w.scale.size > 1 and rw.const(w.value) is None):
        return False
    acc_scale = x.scale * w.scale  # float32, as onnxruntime forms sx * sw
    bias_name = op.inputs[2] if len(op.inputs) > 2 else ""
    bias = _bias(rw, bias_name, acc_scale) if bias_name else None
    if bias_name and bias is None:
        return False
    mult = (acc_scale / out[0]).astype(np.float32)
    kind = dot_kind(ctx_target)
    if kind is not None and op.op == "conv" and _dot_conv(rw, chain, x, w, bias, mult, out, kind):
        return True
    name = op.name
    inputs = [_centered(rw, x, -1, name), _centered(rw, w, w_axis, name)]
    if bias is not None:
        inputs.append(rw.add_constant(bias, f"{bias_name}:int32"))
    attrs = dict(op.attrs)
    rw.drop(q)
    if chain.relu:
        rw.drop(rw.producer_of(q.inputs[0]))  # type: ignore[arg-type]
    rw.drop(op)
    acc = rw.emit(op.op, inputs, attrs, name=name)[0]
    rank = rw.type(acc).rank
    qattrs = {"axis": out_axis % rank if mult.size > 1 else 0, "to": str(q.attr("to")),
              "relu": int(chain.relu)}
    rw.emit("requantize", [acc, rw.add_constant(mult if mult.size > 1 else mult.reshape(()),
                                                f"{q.outputs[0]}:multiplier"),
                           rw.add_constant(out[1], f"{q.outputs[0]}:zero")],
            qattrs, outputs=q.outputs, name=q.name)
    return True


def dot_kind(target: Any) -> str | None:
    """The dot-product instruction the target declares ('vnni', 'sdot'), else None (a GPU or
    unknown target, or a CPU without one: the int32 ops widen and multiply)."""
    if target is None or target.kind != "cpu":
        return None
    dots = target.dot_intrinsics
    return "vnni" if "avx512_vnni" in dots else "sdot" if "sdot" in dots else None


def _dot_conv(rw: Rewriter, chain: Chain, x: Quantized, w: Quantized, bias: np.ndarray | None,
              mult: np.ndarray, out: tuple[np.ndarray, np.ndarray], kind: str) -> bool:
    """A 2-D, ungrouped, batch-1 conv with symmetric int8 weights as im2col words times
    packed weight words; the activation zero point (and int8's +128) moves into the bias:
    sum((x - zx) * w) = sum(u * w) - (zx + shift) * sum(w), the padding holding zx + shift."""
    op, wq = chain.op, rw.const(w.value)
    xt = rw.type(x.value)
    if wq is None or wq.dtype != np.int8 or w.zero.any() or xt.rank != 4 or xt.shape[0] != 1 \
            or int(op.attr("group", 1)) != 1:
        return False
    channels = wq.shape[0]
    shift = 128 if xt.dtype == "int8" else 0
    zx = int(x.zero[0]) + shift
    wsum = wq.reshape(channels, -1).astype(np.int64).sum(axis=1)
    total = (np.zeros(channels, np.int64) if bias is None else bias.astype(np.int64)) - zx * wsum
    if np.abs(total).max() >= 2 ** 31:
        return False
    attrs = {"kernel_shape": wq.shape[2:], "strides": op.attr("strides") or (1, 1),
             "pads": op.attr("pads") or (0, 0, 0, 0), "dilations": op.attr("dilations") or (1, 1),
             "pad_value": zx}
    q, name = chain.quantize, op.name
    rw.drop(q)
    if chain.relu:
        rw.drop(rw.producer_of(q.inputs[0]))  # type: ignore[arg-type]
    rw.drop(op)
    # lanes run over pixels, unless too few to fill vectors: then over output channels
    out_shape = rw.type(q.outputs[0]).shape
    pixels = out_shape[2] * out_shape[3]
    pixel_major = pixels % 16 != 0 and channels % 16 == 0
    cols = rw.emit("pack_windows", [x.value], {**attrs, "pixel_major": int(pixel_major)},
                   name=name)[0]
    words = to_words(wq.reshape(channels, -1))
    weights = rw.add_constant(words.T.copy() if pixel_major else words, f"{w.value}:words")
    operands = [cols, weights] if pixel_major else [weights, cols]
    acc = rw.emit("dot4_matmul", operands, {"dot": kind, "unsigned": int(not pixel_major)},
                  name=name)[0]
    vec = np.broadcast_to(mult, (channels,)).astype(np.float32)
    y = rw.emit("requantize", [acc, rw.add_constant(vec, f"{q.outputs[0]}:multiplier"),
                               rw.add_constant(out[1], f"{q.outputs[0]}:zero"),
                               rw.add_constant(total.astype(np.int32), f"{q.outputs[0]}:bias")],
                {"axis": int(pixel_major), "to": str(q.attr("to")), "relu": int(chain.relu)},
                name=q.name)[0]
    if pixel_major:
        y = rw.emit("transpose", [y], {"perm": (1, 0)}, name=q.name)[0]
    rw.emit("reshape", [y], {"shape": out_shape}, outputs=q.outputs, name=q.name)
    return True


@register_pass("fold_qdq")
def fold_qdq(graph: Graph, ctx: PassContext) -> Graph:
    """Each quantize_linear that ends a foldable chain becomes an integer op + requantize."""
    return rewrite(graph, lambda rw, node: node.op == "quantize_linear"
                   and _fold(rw, node, ctx.target))[0]

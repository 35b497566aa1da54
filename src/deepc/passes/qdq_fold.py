"""The `fold_qdq` pass: DequantizeLinear -> Conv/MatMul/Gemm (-> Relu/Clip) -> QuantizeLinear
chains become integer ops (int32 accumulation) with a fused `requantize` epilogue.

    q_x -> dequantize ─┐                        q_x - zx (int32) ─┐
    q_w -> dequantize ─┼─ conv -> [relu] -> quantize   =>   w_q - zw (int32) ─┼─ conv -> requantize
    bias (float)      ─┘                            bias / (sx*sw) (int32) ─┘

The arithmetic is onnxruntime's QLinearConv/QLinearMatMul: exact int32 sums of (x - zx) *
(w - zw) plus the int32 bias, then float32(acc) * (sx * sw / sy) rounded half to even, plus
zy, saturated. A relu or constant clip before the quantize becomes a clamp of the result to
its quantized bounds (quantize is monotone, so quantize(clip(y)) = clip(quantize(y))). It
runs first in the pipelines: `fold` would turn the weights' dequantize into float constants.
Chains whose parameters are not constants, whose scales are not per tensor (activations) or
per output channel (weights), or whose float bias is not an exact multiple of sx*sw stay in
float. On targets with a dot-product instruction, qdq_dot's rewrites come first. An add of
a dequantized value and dequantized constant bytes (a bias quantised as an activation) whose
sum is quantized becomes onnxruntime's QLinearAdd here too, while those bytes are bytes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from deepc.ir.graph import Graph, Node
from deepc.ops import get_op
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.ops.quant import INT_RANGES
from deepc.passes.column_stride import unit_column_stride
from deepc.passes.manager import PassContext, register_pass
from deepc.passes.qdq_depthwise import TO_NCHW, TO_NHWC, depthwise_nhwc, feeds_depthwise
from deepc.passes.qdq_dot import dot_conv, dot_kind, dot_matmul
from deepc.passes.qdq_match import (
    QTYPES,
    Chain,
    Quantized,
    chain_of,
    chain_of_activation,
    clamp_attrs,
    dequantized,
    drop_chain,
    per_channel,
    per_tensor,
    producer,
    qlinear_add_attrs,
)
from deepc.passes.rewriter import Rewriter, rewrite


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


CONSTANT_CHAIN = frozenset({"quantize_linear", "dequantize_linear", "identity", "reshape",
                            "transpose"})


def _quantized_constant(rw: Rewriter, w: Quantized) -> Quantized:
    """w with its bytes a constant where quantizes of constant float weights make them (a
    model quantised from float weights at run time, its shared weights behind identities
    and other layers' QDQ pairs: the encoder's): `fold` runs after this pass, and integer
    kernels want constant weights (dot-product words, no widening)."""
    if rw.const(w.value) is not None:
        return w
    value = _evaluated(rw, w.value, 6)
    return w if value is None else replace(w, value=rw.add_constant(value, f"{w.value}:const"))


def _evaluated(rw: Rewriter, name: str, depth: int) -> np.ndarray | None:
    """The value of a short chain of quantizes, dequantizes and moves of constants."""
    value = rw.const(name)
    node = rw.producer_of(name)
    if value is not None or depth == 0 or node is None or node.op not in CONSTANT_CHAIN:
        return value
    ins = [_evaluated(rw, i, depth - 1) if i else None for i in node.inputs]
    if any(i and v is None for i, v in zip(node.inputs, ins)):
        return None
    return get_op(node.op).evaluate(ins, node.attrs)[0]


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
    node = producer(rw, name)
    if node is None or node.op != "dequantize_linear":
        return None
    ints = rw.const(node.inputs[0])
    zero = rw.const(node.inputs[2]) if len(node.inputs) > 2 else None
    if ints is None or ints.dtype != np.int32 or ints.ndim != 1 \
            or (zero is not None and zero.any()):
        return None
    return ints


def _requantize_params(rw: Rewriter, q: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """The quantize's (scale, zero point), when constant, per tensor and to int8/uint8."""
    s = rw.const(q.inputs[1])
    z = rw.const(q.inputs[2]) if len(q.inputs) > 2 else None
    if s is None or z is None or s.size != 1 or s.dtype != np.float32 \
            or str(q.attr("to")) not in QTYPES or int(q.attr("block_size", 0)):
        return None
    return s.reshape(()), z.reshape(())


def _fold(rw: Rewriter, q: Node, ctx_target: Any) -> bool:
    chain = chain_of(rw, q)
    out = _requantize_params(rw, q) if chain else None
    if chain is None or out is None:
        return False
    op = chain.op
    x, w = dequantized(rw, op.inputs[0]), dequantized(rw, op.inputs[1])
    if x is None or w is None or not per_tensor(x):
        return False
    w = _quantized_constant(rw, w)
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
    if not per_channel(w, w_axis, channels) or (w.scale.size > 1 and rw.const(w.value) is None):
        return False
    acc_scale = x.scale * w.scale  # float32, as onnxruntime forms sx * sw
    bias_name = op.inputs[2] if len(op.inputs) > 2 else ""
    bias = _bias(rw, bias_name, acc_scale) if bias_name else None
    if bias_name and bias is None:
        return False
    mult = (acc_scale / out[0]).astype(np.float32)
    # below 4 input channels (an RGB first layer) the float kernels beat widening int32
    # multiplies; dot-product words beat both, even where a word mixes taps (squeezenet's
    # 3x3 stem: 0.50 ms float NCHW -> 0.20 packed words and GEMM; resnet18's 7x7: 1.20 ->
    # 0.96; an int8 graph has too few float convs for the blocked float layout)
    grouped = int(op.attr("group", 1)) != 1
    few_channels = op.op == "conv" and wtype.shape[1] < 4 and not grouped \
        and dot_kind(ctx_target) is None
    # its result channels-last where channels-last depthwise convs read it
    nhwc = few_channels and ctx_target is not None and ctx_target.kind == "cpu" \
        and feeds_depthwise(rw, q.outputs[0])
    if few_channels and _float_exact_conv(rw, chain, x, w, bias, mult, out, nhwc):
        return True
    kind = dot_kind(ctx_target)
    if kind is not None and (dot_conv if op.op == "conv" else dot_matmul)(
            rw, chain, x, w, bias, mult, out, kind):
        return True
    if grouped and depthwise_nhwc(rw, chain, x, w, bias, mult, out, ctx_target):
        return True
    # other grouped convs stay int32 convs: their neighbours are int8 NCHW, and the
    # float kernels' channel-blocked layout costs a transform each way (mobilenet_v2: 3x
    # the conv itself)
    if op.op == "conv" and not grouped and _float_exact_conv(rw, chain, x, w, bias, mult, out):
        return True
    name = op.name
    inputs = [_centered(rw, x, -1, name), _centered(rw, w, w_axis, name)]
    if bias is not None:
        inputs.append(rw.add_constant(bias, f"{bias_name}:int32"))
    attrs = dict(op.attrs)
    # a depthwise conv's int32 kernel vectorizes along contiguous columns only
    strided = unit_column_stride(attrs, wtype.shape[2:], rw.type(x.value).shape,
                                 rw.type(q.outputs[0]).shape) if grouped else None
    drop_chain(rw, chain)
    acc = rw.emit(op.op, inputs, strided[0] if strided else attrs, name=name)[0]
    rank = rw.type(acc).rank
    qattrs = {"axis": out_axis % rank if mult.size > 1 else 0, "to": str(q.attr("to")),
              **clamp_attrs(chain, *out)}
    y = rw.emit("requantize", [acc, rw.add_constant(mult if mult.size > 1 else mult.reshape(()),
                                                    f"{q.outputs[0]}:multiplier"),
                               rw.add_constant(out[1], f"{q.outputs[0]}:zero")],
                qattrs, outputs=None if strided else q.outputs, name=q.name)[0]
    if strided:
        rw.emit("slice", [y], strided[1], outputs=q.outputs, name=q.name)
    return True


def _float_exact_conv(rw: Rewriter, chain: Chain, x: Quantized, w: Quantized,
                      bias: np.ndarray | None, mult: np.ndarray,
                      out: tuple[np.ndarray, np.ndarray], nhwc: bool = False) -> bool:
    """A conv whose every sum of (x - zx) * (w - zw) stays below 2**24 in magnitude runs in
    float32 on those integers, exactly (products and partial sums are integers float32 holds),
    on the fast float kernels: small first layers, and ungrouped convs on targets without a
    dot-product instruction. The bias joins in int32 in the requantize. `nhwc`: a
    conv_nchwc with every channel in one block, its result channels-last (transposed back to
    NCHW, which cancels against the channels-last depthwise conv reading it)."""
    wq = rw.const(w.value)
    if wq is None:
        return False
    zero = w.zero.astype(np.int64).reshape([-1] + [1] * (wq.ndim - 1)) if w.zero.size > 1 \
        else int(w.zero[0])
    centred = wq.astype(np.int64) - zero
    lo, hi = INT_RANGES[rw.type(x.value).dtype]
    x_max = max(int(x.zero[0]) - lo, hi - int(x.zero[0]))
    if np.abs(centred).reshape(centred.shape[0], -1).sum(axis=1).max() * x_max >= 2 ** 24:
        return False
    op, q = chain.op, chain.quantize
    channels = wq.shape[0]
    drop_chain(rw, chain)
    xf = rw.emit("cast", [x.value], {"to": "float32"}, name=op.name)[0]
    if x.zero.any():
        z = rw.add_constant(np.float32(x.zero[0]), f"{x.value}:zero")
        xf = rw.emit("sub", [xf, z], name=op.name)[0]
    if nhwc:
        _, c, h, width = rw.type(xf).shape
        xf = rw.emit("transpose", [xf], {"perm": TO_NHWC}, name=op.name)[0]
        xf = rw.emit("reshape", [xf], {"shape": (1, 1, h, width, c)}, name=op.name)[0]
        wf = rw.add_constant(weight_to_blocked(centred.astype(np.float32), c, channels, False),
                             f"{w.value}:float")
        attrs = {k: v for k, v in op.attrs.items() if k != "kernel_layout"}
        y = rw.emit("conv_nchwc", [xf, wf], attrs, name=op.name)[0]
    else:
        wf = rw.add_constant(centred.astype(np.float32), f"{w.value}:float")
        y = rw.emit("conv", [xf, wf], dict(op.attrs), name=op.name)[0]
    acc = rw.emit("cast", [y], {"to": "int32"}, name=op.name)[0]
    ints = np.zeros(channels, np.int32) if bias is None else bias
    y = rw.emit("requantize", [acc, rw.add_constant(np.broadcast_to(mult, (channels,)).copy(),
                                                    f"{q.outputs[0]}:multiplier"),
                               rw.add_constant(out[1], f"{q.outputs[0]}:zero"),
                               rw.add_constant(ints, f"{q.outputs[0]}:bias")],
                {"axis": 4 if nhwc else 1, "to": str(q.attr("to")), **clamp_attrs(chain, *out)},
                outputs=None if nhwc else q.outputs, name=q.name)[0]
    if nhwc:
        _, _, oh, ow, _ = rw.type(y).shape
        y = rw.emit("reshape", [y], {"shape": (1, oh, ow, channels)}, name=q.name)[0]
        rw.emit("transpose", [y], {"perm": TO_NCHW}, outputs=q.outputs, name=q.name)
    return True


def _fold_add(rw: Rewriter, q: Node) -> bool:
    """quantize(dequantize(a) + dequantize(b)) where a's or b's bytes are constant (a bias
    quantised as an activation, broadcast): onnxruntime's QLinearAdd. Here, before `fold`
    makes that dequantize a float constant; adds of two run-time values wait for qdq_glue,
    which also finds them behind moves."""
    add = rw.producer_of(q.inputs[0])
    out = _requantize_params(rw, q)
    if add is None or add.op != "add" or out is None:
        return False
    ins = [dequantized(rw, i) for i in add.inputs]
    if ins[0] is None or ins[1] is None:
        return False
    a, b = (_quantized_constant(rw, x) for x in ins)
    attrs = qlinear_add_attrs(rw, a, b, (float(out[0]), int(out[1]), str(q.attr("to"))))
    if attrs is None or (rw.const(a.value) is None and rw.const(b.value) is None):
        return False
    rw.drop(q)
    rw.emit("quantized_add", [a.value, b.value], attrs, outputs=q.outputs, name=q.name)
    return True


def _fold_activation(rw: Rewriter, q: Node) -> bool:
    """quantize(relu/clip(dequantize(x))) at x's own scale and zero point: x clamped to the
    quantized bounds. dequantize then quantize at one scale gives x back, and quantize is
    monotone, so clamping commutes with it."""
    act = rw.producer_of(q.inputs[0])
    out = _requantize_params(rw, q)
    if act is None or act.op not in ("relu", "clip") or out is None \
            or not rw.only_use(q.inputs[0]):
        return False
    x = dequantized(rw, act.inputs[0])
    if x is None or not per_tensor(x) or rw.type(x.value).dtype != str(q.attr("to")) \
            or x.scale[0] != out[0] or x.zero[0] != out[1]:
        return False
    chain = chain_of_activation(q, act)
    lo, hi = INT_RANGES[str(q.attr("to"))]
    bounds = clamp_attrs(chain, *out)
    rw.drop(q)
    rw.drop(act)
    rw.emit("clip", [x.value], {"min": max(lo, bounds.get("min", lo)),
                                "max": min(hi, bounds.get("max", hi))},
            outputs=q.outputs, name=q.name)
    return True


@register_pass("fold_qdq")
def fold_qdq(graph: Graph, ctx: PassContext) -> Graph:
    """Each quantize_linear that ends a foldable chain becomes an integer op + requantize, or
    an integer clamp where it requantizes a relu/clip at its input's scale."""
    return rewrite(graph, lambda rw, node: node.op == "quantize_linear"
                   and (_fold(rw, node, ctx.target) or _fold_add(rw, node)
                        or _fold_activation(rw, node)))[0]

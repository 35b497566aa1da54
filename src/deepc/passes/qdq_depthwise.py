"""QDQ depthwise convs -> int32 `conv_nchwc` on channels-last values (x[1, 1, H, W, C]), the
channels in the vector lanes, for CPU targets; `fold_qdq` tries it on grouped convs.

    q_x [1,C,H,W] -> transpose [1,H,W,C] -> cast int32 - zx -> conv_nchwc (one block of C
    channels, w[1,1,KH,KW,1,C] int32) -> requantize (per channel) -> transpose back

On NCHW a depthwise conv's lanes run along an image row: 14 or 7 columns fill part of a
vector, a stride-2 conv computes every column and drops half, and a padded int32 copy of the
whole input goes through memory first (mobilenet_v2: int8 depthwise convs took 2-4x their
fp32 NCHWc kernels). Channels-last lanes are full for any image, the masked reads of
conv_nchwc need no copy, and the transposes cancel against the pixel-major [pixels,
channels] results of the dot-product 1x1 convs around it (qdq_dot; move_chains, run at
the end of qdq_glue).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepc.ops.registry import FusionKind, get_op
from deepc.passes.qdq_match import Chain, Quantized, clamp_attrs, drop_chain
from deepc.passes.rewriter import Rewriter

TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)
LANES = 16  # int32 lanes of a 512-bit vector (and four 128-bit ones)
MAX_GLUE = 16  # float ops between a dequantize and the next quantize (SiLU: 2)


def is_depthwise(rw: Rewriter, op: Any) -> bool:
    """A 2-D batch-1 conv with one input and one output channel per group, and whole
    vectors of them (shufflenet's 58 channels would run 2 lanes wide: 3x slower than NCHW)."""
    if op.op != "conv" or op.attr("kernel_layout", "OIHW") != "OIHW":
        return False
    xt, wt = rw.type(op.inputs[0]), rw.type(op.inputs[1])
    group = int(op.attr("group", 1))
    return (xt.rank == 4 and wt.rank == 4 and xt.shape[0] == 1 and group > 1
            and group == xt.shape[1] == wt.shape[0] and wt.shape[1] == 1
            and group % LANES == 0)


def _readers(rw: Rewriter, value: str) -> list[Any]:
    return [n for n in rw.graph.nodes if value in n.inputs]


def feeds_depthwise(rw: Rewriter, value: str, depth: int = 3) -> bool:
    """Whether every reader of the quantized `value` dequantizes it for depthwise convs, or
    for elementwise float ops quantized again (ReLU6, SiLU between QDQ pairs: qdq_glue makes
    them clamps or byte tables) that do: of the graph the pass started from, where those
    convs may not be rewritten yet."""
    readers = _readers(rw, value)
    if not readers or value in rw.graph.outputs or depth == 0:
        return False
    for node in readers:
        if node.op != "dequantize_linear" or node.inputs[0] != value:
            return False
    seen: set[str] = set()
    todo = [n.outputs[0] for n in readers]
    while todo:
        v = todo.pop()
        users = _readers(rw, v)
        if not users or v in rw.graph.outputs or len(seen) > MAX_GLUE:
            return False
        for user in users:
            if user.name in seen:
                continue
            seen.add(user.name)
            if user.op == "quantize_linear":
                if not feeds_depthwise(rw, user.outputs[0], depth - 1):
                    return False
            elif is_depthwise(rw, user):
                if user.inputs[0] != v:
                    return False
            elif get_op(user.op).kind in (FusionKind.ELEMWISE, FusionKind.BROADCAST) \
                    and len(user.outputs) == 1:
                todo.append(user.outputs[0])
            else:
                return False
    return True


def channels_last_source(rw: Rewriter, value: str, depth: int = 8) -> bool:
    """Whether the NCHW bytes `value` are channels-last ones transposed: a channels-last
    depthwise conv's result (TO_NCHW) or a pixel-major GEMM's [pixels, channels] (transpose,
    reshape), directly or through elementwise float ops between QDQ pairs (ReLU6, SiLU), which
    qdq_glue turns into byte ops and moves."""
    node = rw.producer_of(value)
    if node is None or depth == 0:
        return False
    if node.op == "transpose":
        return tuple(node.attr("perm")) == TO_NCHW
    if node.op == "reshape":
        inner = rw.producer_of(node.inputs[0])
        return inner is not None and inner.op == "transpose" \
            and tuple(inner.attr("perm")) == (1, 0) \
            and rw.type(inner.inputs[0]).shape[1] == rw.type(value).shape[1]
    if node.op != "quantize_linear":
        return False
    # back through the float ops to the dequantizes they read (SiLU: mul, sigmoid)
    seen: set[str] = set()
    todo = [node.inputs[0]]
    while todo:
        v = todo.pop()
        if v in seen or rw.const(v) is not None:
            continue
        seen.add(v)
        src = rw.producer_of(v)
        if src is None or len(seen) > MAX_GLUE:
            return False
        if src.op == "dequantize_linear":
            if not channels_last_source(rw, src.inputs[0], depth - 1):
                return False
        elif get_op(src.op).kind in (FusionKind.ELEMWISE, FusionKind.BROADCAST):
            todo.extend(i for i in src.inputs if i)
        else:
            return False
    return True


def depthwise_nhwc(rw: Rewriter, chain: Chain, x: Quantized, w: Quantized,
                   bias: np.ndarray | None, mult: np.ndarray,
                   out: tuple[np.ndarray, np.ndarray], target: Any) -> bool:
    op, q = chain.op, chain.quantize
    wq = rw.const(w.value)
    if target is None or target.kind != "cpu" or wq is None or not is_depthwise(rw, op):
        return False
    channels, _, kh, kw = wq.shape
    zero = w.zero.astype(np.int32).reshape(-1, 1, 1, 1) if w.zero.size > 1 \
        else np.int32(w.zero[0])
    centred = wq.astype(np.int32) - zero
    # [C, 1, KH, KW] -> [1, 1, KH, KW, 1, C]: conv_nchwc's depthwise weights, one block
    blocked = np.ascontiguousarray(centred.transpose(1, 2, 3, 0)).reshape(1, 1, kh, kw, 1,
                                                                          channels)
    _, _, h, width = rw.type(x.value).shape
    out_shape = rw.type(q.outputs[0]).shape
    name = op.name
    drop_chain(rw, chain)
    xt = rw.emit("transpose", [x.value], {"perm": TO_NHWC}, name=name)[0]
    xt = rw.emit("reshape", [xt], {"shape": (1, 1, h, width, channels)}, name=name)[0]
    xi = rw.emit("cast", [xt], {"to": "int32"}, name=name)[0]
    if x.zero.any():
        zx = rw.add_constant(np.int32(x.zero[0]), f"{x.value}:zero")
        xi = rw.emit("sub", [xi, zx], name=name)[0]
    attrs = {k: v for k, v in op.attrs.items() if k != "kernel_layout"}
    acc = rw.emit("conv_nchwc", [xi, rw.add_constant(blocked, f"{w.value}:nhwc")], attrs,
                  name=name)[0]
    ints = np.zeros(channels, np.int32) if bias is None else bias
    vec = np.broadcast_to(mult, (channels,)).astype(np.float32)
    y = rw.emit("requantize", [acc, rw.add_constant(vec, f"{q.outputs[0]}:multiplier"),
                               rw.add_constant(out[1], f"{q.outputs[0]}:zero"),
                               rw.add_constant(ints, f"{q.outputs[0]}:bias")],
                {"axis": 4, "to": str(q.attr("to")), **clamp_attrs(chain, *out)},
                name=q.name)[0]
    oh, ow = out_shape[2:]
    y = rw.emit("reshape", [y], {"shape": (1, oh, ow, channels)}, name=q.name)[0]
    rw.emit("transpose", [y], {"perm": TO_NCHW}, outputs=q.outputs, name=q.name)
    return True

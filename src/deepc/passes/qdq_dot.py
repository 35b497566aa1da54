"""QDQ conv/matmul/gemm chains -> int8 word GEMMs (`dot4_matmul`) for targets that declare a
dot-product instruction (x86 AVX-512 VNNI, ARM sdot), the rewrites `fold_qdq` tries first.

    conv:    pack_windows(q_x) [words, pixels] -> W[M, words] x cols -> requantize -> reshape
    matmul:  pack_rows(q_x) [rows, words] -> rows x W[words, N] -> requantize -> reshape

Activations are unsigned bytes u = q_x (+128 for int8), weights symmetric int8, so the
activation zero point moves into the int32 bias:
sum((x - zx) * w) = sum(u * w) - (zx + shift) * sum(w); a conv's padding holds zx + shift.
The vector lanes run over the operand with 16 or more entries per row (pixels, else output
channels), so a 7x7 layer still fills 512-bit vectors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepc.ops.qdot import pairs_fit, to_words, widen_pairs
from deepc.passes.qdq_depthwise import TO_NCHW, TO_NHWC, channels_last_source, feeds_depthwise
from deepc.passes.qdq_match import Chain, Quantized, clamp_attrs, drop_chain
from deepc.passes.rewriter import Rewriter

LANES = 16  # int32 lanes of a 512-bit vector: below this a lane order leaves vectors part-empty
# convs with windows over one pixel, or strided, run as a direct conv of channels-last
# words where their output channels, in the vector lanes, fill whole half registers at least
# (shufflenet's 24-channel stem: 3 x 8 lanes, 0.25 -> 0.11 ms with its pool)
DIRECT_CHANNELS = LANES // 2
GEMV_COLUMNS = 4 * LANES  # four registers of independent sums hide a dot product's latency
PIXEL_MAJOR_BELOW = 1024  # pixels: a larger layer keeps pixel lanes, its row tail widening


def dot_kind(target: Any) -> str | None:
    """The dot-product instruction the target declares ('vnni', 'sdot', AVX2's 'madd' pair),
    else None (a GPU or unknown target, or a CPU without one: the int32 ops widen and
    multiply)."""
    if target is None or target.kind != "cpu":
        return None
    dots = target.dot_intrinsics
    for name, kind in (("avx512_vnni", "vnni"), ("sdot", "sdot"), ("avx2_madd", "madd")):
        if name in dots:
            return kind
    return None


def _instruction(kind: str, weights: np.ndarray) -> str:
    """The dot4 kind for these weight words: AVX2's saturating vpmaddubsw where no byte pair
    of them can saturate it, else its exact vpmaddwd (wd: on weights widened ahead of time,
    which `_weights` narrows to maddwd where they are the vector operand)."""
    if kind != "madd":
        return kind
    return "maddubs" if pairs_fit(weights) else "wd"


def _weights(rw: Rewriter, words: np.ndarray, axis: int, kind: str, name: str,
             broadcast: bool = False) -> tuple[str, str]:
    """(the constant of these weight words, `axis` their word axis, the dot kind for them).
    Where the GEMM broadcasts them (`broadcast`: pixels in the lanes), AVX2's exact
    vpmaddwd takes them widened ahead of time (wd): two broadcast loads a word instead of
    three shifts. Where they are the vector operand (output channels in the lanes) they stay
    bytes (maddwd): widened ones double the panel a row tile streams from L2 and hold 8
    registers in a 3x4 tile (resnet18's 7x7 layers: 2.8 -> 3.6-3.8 ms, same outputs)."""
    dot = _instruction(kind, words)
    if dot == "wd" and not broadcast:
        dot = "maddwd"
    return rw.add_constant(widen_pairs(words, axis) if dot == "wd" else words, name), dot


def _bias(x: Quantized, xtype: str, wsum: np.ndarray, bias: np.ndarray | None
          ) -> tuple[np.ndarray, int] | None:
    """(the int32 bias with the zero-point term, the activations' unsigned zero point)."""
    zx = int(x.zero[0]) + (128 if xtype == "int8" else 0)
    total = (np.zeros(wsum.size, np.int64) if bias is None else bias.astype(np.int64)) - zx * wsum
    return None if np.abs(total).max() >= 2 ** 31 else (total.astype(np.int32), zx)


def _epilogue(rw: Rewriter, chain: Chain, acc: str, axis: int, mult: np.ndarray,
              out: tuple[np.ndarray, np.ndarray], bias: np.ndarray,
              perm: tuple[int, ...] | None, widened: tuple[int, int, int] | None = None) -> None:
    """requantize along `axis` (per output channel), transposed by `perm`, then back to the
    quantize's shape; `widened` (rows, wide, columns): the first `columns` of each row of
    `wide` pixels."""
    q = chain.quantize
    vec = np.broadcast_to(mult, bias.shape).astype(np.float32)
    y = rw.emit("requantize", [acc, rw.add_constant(vec, f"{q.outputs[0]}:multiplier"),
                               rw.add_constant(out[1], f"{q.outputs[0]}:zero"),
                               rw.add_constant(bias, f"{q.outputs[0]}:bias")],
                {"axis": axis, "to": str(q.attr("to")), **clamp_attrs(chain, *out)},
                name=q.name)[0]
    if widened:
        rows, wide, columns = widened
        y = rw.emit("reshape", [y], {"shape": (rw.type(y).shape[0], rows, wide)},
                    name=q.name)[0]
        y = rw.emit("slice", [y], {"starts": (0,), "ends": (columns,), "axes": (2,),
                                   "steps": (1,)}, name=q.name)[0]
    if perm:
        if len(perm) > rw.type(y).rank:
            # a batch axis first: the 4-D move to NCHW that the rules cancelling moves (and
            # moving elementwise ops before them) look for
            y = rw.emit("reshape", [y], {"shape": (1, *rw.type(y).shape)}, name=q.name)[0]
        y = rw.emit("transpose", [y], {"perm": perm}, name=q.name)[0]
    rw.emit("reshape", [y], {"shape": rw.type(q.outputs[0]).shape}, outputs=q.outputs,
            name=q.name)


def _symmetric_int8(rw: Rewriter, w: Quantized, bias: np.ndarray | None, mult: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
    """(the weights minus their zero point as int8, the bias and multiplier to use with
    them): int8 weights with zero point 0, or uint8 ones with one zero point whose
    differences fit. Differences of -127..128 (zero point 127: the encoder's run-time
    quantised weights) fit negated: the sums come out negated, and so do the bias and the
    multiplier, which leaves the requantize's float32 product exactly as it was."""
    wq = rw.const(w.value)
    if wq is None or (wq.dtype == np.int8 and w.zero.any()):
        return None
    if wq.dtype == np.int8:
        return wq, bias, mult
    if wq.dtype != np.uint8 or w.zero.size != 1:
        return None
    centred = wq.astype(np.int16) - int(w.zero[0])
    low, high = centred.min(initial=0), centred.max(initial=0)
    if low >= -128 and high <= 127:
        return centred.astype(np.int8), bias, mult
    if low >= -127 and high <= 128:
        negated = None if bias is None else -bias.astype(np.int64)
        return (-centred).astype(np.int8), negated, -mult
    return None


def dot_conv(rw: Rewriter, chain: Chain, x: Quantized, w: Quantized, bias: np.ndarray | None,
             mult: np.ndarray, out: tuple[np.ndarray, np.ndarray], kind: str) -> bool:
    """A 2-D, ungrouped, batch-1 conv with symmetric int8 weights."""
    op, signed = chain.op, _symmetric_int8(rw, w, bias, mult)
    xt = rw.type(x.value)
    if signed is None or xt.rank != 4 or xt.shape[0] != 1 or int(op.attr("group", 1)) != 1:
        return False
    wq, bias, mult = signed
    channels = wq.shape[0]
    folded = _bias(x, xt.dtype, wq.reshape(channels, -1).astype(np.int64).sum(axis=1), bias)
    if folded is None:
        return False
    total, zx = folded
    out_shape = rw.type(chain.quantize.outputs[0]).shape
    pixels = out_shape[2] * out_shape[3]
    # a transposed [pixels, channels] result costs a strided copy: only for small layers,
    # or where a channels-last depthwise conv reads it (the transposes cancel)
    pixel_major = channels % LANES == 0 and (
        (pixels % LANES != 0 and pixels < PIXEL_MAJOR_BELOW)
        or feeds_depthwise(rw, chain.quantize.outputs[0]))
    attrs = {"kernel_shape": wq.shape[2:], "strides": op.attr("strides") or (1, 1),
             "pads": op.attr("pads") or (0, 0, 0, 0), "dilations": op.attr("dilations") or (1, 1),
             "pad_value": zx, "pixel_major": int(pixel_major)}
    # a 1x1 conv of channels-last bytes (a depthwise conv's result, a pixel-major GEMM's): a
    # GEMM of their rows, pixel-major (the result's transpose back to NCHW, if it stays, is
    # no dearer than the input's would be)
    nhwc = _channels_last_rows(rw, x.value, attrs) if channels >= LANES else None
    drop_chain(rw, chain)
    if nhwc is not None:
        cols = rw.emit("pack_rows", [nhwc], name=op.name)[0]
        packed = to_words(wq.reshape(channels, -1)).T.copy()
        weights, dot = _weights(rw, packed, 0, kind, f"{w.value}:words")
        acc = rw.emit("dot4_matmul", [cols, weights], {"dot": dot, "unsigned": 0},
                      name=op.name)[0]
        _epilogue(rw, chain, acc, 1, mult, out, total, (1, 0))
        return True
    if channels % DIRECT_CHANNELS == 0 and (tuple(attrs["kernel_shape"]) != (1, 1)
                                            or tuple(attrs["strides"]) != (1, 1)):
        acc = _direct_conv(rw, op.name, x.value, xt.dtype, wq, attrs, kind)
        _epilogue(rw, chain, acc, 2, mult, out, total, TO_NCHW)
        return True
    # pixel lanes: a count no multiple of the vector widens each output row with windows
    # of padding until it is one (55x55 pixels would run 11 lanes wide, 13x13 13 lanes: 94
    # and 61 GFLOP/s where full vectors reach ~800); rows keep the columns read affine
    rows, columns = out_shape[2], out_shape[3]
    wide = columns if pixel_major else next(w for w in range(columns, columns + LANES + 1)
                                            if rows * w % LANES == 0)
    if wide != columns:
        pads, stride = attrs["pads"], attrs["strides"][1]
        attrs["pads"] = (*pads[:3], pads[3] + (wide - columns) * stride)
    cols = rw.emit("pack_windows", [x.value], attrs, name=op.name)[0]
    words = to_words(wq.reshape(channels, -1))
    weights, dot = _weights(rw, words.T.copy() if pixel_major else words,
                            0 if pixel_major else 1, kind, f"{w.value}:words",
                            not pixel_major)
    operands = [cols, weights] if pixel_major else [weights, cols]
    acc = rw.emit("dot4_matmul", operands, {"dot": dot, "unsigned": int(not pixel_major)},
                  name=op.name)[0]
    _epilogue(rw, chain, acc, int(pixel_major), mult, out, total,
              (1, 0) if pixel_major else None,
              (rows, wide, columns) if wide != columns else None)
    return True


def _direct_conv(rw: Rewriter, name: str, x: str, dtype: str, wq: np.ndarray,
                 attrs: dict[str, Any], kind: str) -> str:
    """A conv with a window larger than one pixel as `dot4_conv` over channels-last words of
    its padded input: no im2col matrix (9 words per input word for a 3x3 window, 1.9 ms of
    resnet18's 6.9 went to writing them), each input word read by the GEMM's row tile from
    the cache instead. Returns the int32 [OH, OW, M] sums."""
    top, left, bottom, right = attrs["pads"]
    _, c, h, w = rw.type(x).shape
    h, w = h + top + bottom, w + left + right
    if c <= 4:
        # one word a pixel (an RGB stem): the padded words straight from the NCHW planes,
        # vectors along their rows (a transpose's loop over [pixels, 1] ran scalar)
        one = {**attrs, "kernel_shape": (1, 1), "strides": (1, 1), "dilations": (1, 1),
               "pixel_major": 1}
        words = rw.emit("pack_windows", [x], one, name=name)[0]
    else:
        raw_pad = int(attrs["pad_value"]) - (128 if dtype == "int8" else 0)
        nhwc = rw.emit("transpose", [x], {"perm": TO_NHWC}, name=f"{x}:nhwc")[0]
        padded = rw.emit("pad", [nhwc], {"pads": (0, top, left, 0, 0, bottom, right, 0),
                                         "mode": "constant", "value": raw_pad}, name=name)[0]
        rows = rw.emit("reshape", [padded], {"shape": (h * w, c)}, name=name)[0]
        words = rw.emit("pack_rows", [rows], name=name)[0]
    image = rw.emit("reshape", [words], {"shape": (h, w, rw.type(words).shape[1])},
                    name=name)[0]
    # [M, C, KH, KW] -> words of 4 input channels [KH, KW, C/4, M]: the output channels in
    # the lanes, one tap's words a row the row tile broadcasts against
    wwords = to_words(np.ascontiguousarray(wq.transpose(2, 3, 0, 1)))
    weights, dot = _weights(rw, np.ascontiguousarray(wwords.transpose(0, 1, 3, 2)), 2, kind,
                            f"{name}:words")
    return rw.emit("dot4_conv", [image, weights], {"strides": attrs["strides"],
                                                    "dilations": attrs["dilations"],
                                                    "dot": dot}, name=name)[0]


def _channels_last_rows(rw: Rewriter, x: str, attrs: dict[str, Any]) -> str | None:
    """For a 1x1, stride-1, unpadded conv of NCHW bytes that are channels-last ones
    transposed: those as [pixels, channels] rows (transposed back: the two transposes
    cancel once qdq_glue has moved the quantizes between them), else None."""
    if tuple(attrs["kernel_shape"]) != (1, 1) or tuple(attrs["strides"]) != (1, 1) \
            or any(attrs["pads"]) or not channels_last_source(rw, x):
        return None
    _, c, h, w = rw.type(x).shape
    nhwc = rw.emit("transpose", [x], {"perm": TO_NHWC}, name=f"{x}:nhwc")[0]
    return rw.emit("reshape", [nhwc], {"shape": (h * w, c)}, name=f"{x}:nhwc")[0]


def dot_matmul(rw: Rewriter, chain: Chain, x: Quantized, w: Quantized, bias: np.ndarray | None,
               mult: np.ndarray, out: tuple[np.ndarray, np.ndarray], kind: str) -> bool:
    """x[..., K] @ w[K, N] (or a gemm's w[N, K] with trans_b) with constant symmetric int8
    weights and N filling a vector: rows of x as words times weight words (a tail of lanes
    that is no multiple of 4 widens and multiplies)."""
    op, signed = chain.op, _symmetric_int8(rw, w, bias, mult)
    xt = rw.type(x.value)
    if signed is None or signed[0].ndim != 2 or xt.rank < 2:
        return False
    wq, bias, mult = signed
    w_kn = wq.T if op.op == "gemm" and int(op.attr("trans_b", 0)) else wq
    k, n = w_kn.shape
    if n < LANES or xt.shape[-1] != k:
        return False
    folded = _bias(x, xt.dtype, w_kn.astype(np.int64).sum(axis=0), bias)
    if folded is None:
        return False
    total, _ = folded
    drop_chain(rw, chain)
    rows = int(np.prod(xt.shape[:-1]))
    # fewer rows than a tile (a classifier's one): each row's columns are its only
    # independent sums, so they get zero columns up to GEMV_COLUMNS' multiple (1000 classes
    # ran as one 8-lane chain of dependent dot products per block: 0.062 ms of 1280 x 1000)
    wide = -(-n // GEMV_COLUMNS) * GEMV_COLUMNS if rows < LANES else n
    if wide != n:
        w_kn = np.pad(w_kn, [(0, 0), (0, wide - n)])
        total = np.pad(total, (0, wide - n))
        mult = np.pad(np.broadcast_to(mult, (n,)), (0, wide - n))
    flat = rw.emit("reshape", [x.value], {"shape": (rows, k)}, name=op.name)[0]
    words = rw.emit("pack_rows", [flat], name=op.name)[0]
    packed = to_words(np.ascontiguousarray(w_kn.T)).T.copy()
    weights, dot = _weights(rw, packed, 0, kind, f"{w.value}:words")
    acc = rw.emit("dot4_matmul", [words, weights], {"dot": dot, "unsigned": 0},
                  name=op.name)[0]
    _epilogue(rw, chain, acc, 1, mult, out, total, None, (1, wide, n) if wide != n else None)
    return True

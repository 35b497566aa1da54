"""int8 GEMM in 4-byte words, the form dot-product instructions read: `pack_windows` (a 2-D
int8 conv's input -> im2col words), `pack_rows` (a matrix's rows -> words) and `dot4_matmul`.

A word holds four consecutive reduction entries, byte t = entry 4*k4 + t. vpdpbusd and sdot
add, per int32 lane, the four byte products of two words; `dot4_matmul` is one int32 GEMM of
such products over the words, so that a schedule's vector loop over the output's last axis
becomes one dot-product instruction per (row, word). Activations are unsigned bytes (int8
inputs shifted by +128, corrected in the bias), weights signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.loop import Buffer, Stmt, Store
from deepc.ir.tensor import Tensor, compute, extern, reduce_axis, rsum
from deepc.ir.tensor_eval import dot4, pairs_to_words
from deepc.ir.types import TensorType
from deepc.ops.loop_nests import loop_nest
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import pad_spatial, spatial_attrs, window_out_shape, windows

# "" = widening multiplies, else the instruction to use (maddubs: only for pairs_fit weights;
# wd: vpmaddwd on weights widened ahead of time, `widen_pairs`, their word axis doubled)
DOT_KINDS = ("", "vnni", "sdot", "maddubs", "maddwd", "wd")
PAIR_LIMIT = 128  # 255 * 128 = 32640 <= 32767: a vpmaddubsw pair sum of such bytes is exact


def words(n: int) -> int:
    return -(-n // 4)


def to_words(bytes_: np.ndarray) -> np.ndarray:
    """[..., K] bytes (uint8 or int8) -> [..., ceil(K/4)] int32 words, zero-padded."""
    pad = words(bytes_.shape[-1]) * 4 - bytes_.shape[-1]
    b = np.pad(bytes_.view(np.uint8), [(0, 0)] * (bytes_.ndim - 1) + [(0, pad)])
    return np.ascontiguousarray(b).view("<i4")


def pairs_fit(words_: np.ndarray) -> bool:
    """Whether every pair of signed bytes that vpmaddubsw sums (bytes 0, 1 and 2, 3 of a
    word) has |b0| + |b1| <= 128, so that 255 * that never saturates its int16 sum."""
    b = np.ascontiguousarray(words_, "<i4")[..., None].view(np.int8).astype(np.int32)
    pairs = np.abs(b).reshape(*b.shape[:-1], 2, 2).sum(axis=-1)
    return bool(pairs.max(initial=0) <= PAIR_LIMIT)


def widen_pairs(words_: np.ndarray, axis: int) -> np.ndarray:
    """Signed byte words -> dot4.wd's operands: along `axis`, word k becomes entries 2k (its
    bytes 0 and 2 as two int16) and 2k + 1 (bytes 1 and 3), the vpmaddwd operands."""
    b = np.ascontiguousarray(words_, "<i4")[..., None].view(np.int8).astype("<i2")
    even = np.ascontiguousarray(b[..., 0::2]).view("<i4")[..., 0]
    odd = np.ascontiguousarray(b[..., 1::2]).view("<i4")[..., 0]
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(words_.shape)
    shape[axis] *= 2
    return np.ascontiguousarray(out.reshape(shape))


def narrow_pairs(pairs: np.ndarray, axis: int) -> np.ndarray:
    """`widen_pairs`' inverse: the signed byte words."""
    even = np.take(pairs, range(0, pairs.shape[axis], 2), axis)
    odd = np.take(pairs, range(1, pairs.shape[axis], 2), axis)
    return pairs_to_words(even, odd)


def unsigned_bytes(x: Any, dtype: str) -> Any:
    """x's bytes as 0..255 int32: int8 shifted by +128."""
    return x.astype("int32") + 128 if dtype == "int8" else x.astype("int32")


def _word(byte: Any, entry: Any, limit: int, t: int) -> Any:
    """byte << 8t, or 0 past the reduction's end."""
    shifted = byte if t == 0 else byte * (1 << (8 * t))
    return shifted if limit % 4 == 0 else E.select(entry < limit, shifted, E.as_expr(0, shifted))


# -- pack_windows ---------------------------------------------------------------------------
# OPAQUE: hand-written loops (see its compute)
pack_windows = Op(
    "pack_windows", FusionKind.OPAQUE,
    doc="x[1, C, H, W] int8/uint8 -> words[ceil(C*KH*KW/4), OH*OW] int32 of x's unsigned "
        "bytes in im2col order (entry (c, kh, kw)), `pad_value` where a window leaves x; "
        "transposed to [OH*OW, words] with attrs['pixel_major']; attrs kernel_shape, strides, "
        "pads, dilations, pad_value")


def _geometry(x: TensorType, attrs: Attrs) -> tuple[tuple[int, ...], tuple[int, ...]]:
    kernel = tuple(int(k) for k in attrs["kernel_shape"])  # type: ignore[union-attr]
    return kernel, window_out_shape(x.shape[2:], kernel, attrs)


@pack_windows.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank != 4 or x.shape[0] != 1 or x.dtype not in ("int8", "uint8"):
        raise ValueError(f"pack_windows takes one int8/uint8 image [1, C, H, W], got {x}")
    kernel, out = _geometry(x, attrs)
    shape = (words(x.shape[1] * kernel[0] * kernel[1]), out[0] * out[1])
    return TensorType(shape[::-1] if int(attrs.get("pixel_major", 0)) else shape, "int32")


@pack_windows.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    assert x is not None
    kernel, out = _geometry(TensorType.of(x), attrs)
    strides, pads, dilations = spatial_attrs(attrs, 2)
    u = unsigned_bytes(x, x.dtype.name)
    xp = pad_spatial(u, pads[:2], pads[2:], int(attrs["pad_value"]))  # type: ignore[arg-type]
    win = windows(xp, kernel, strides, dilations, out)  # [1, C, OH, OW, KH, KW]
    cols = win[0].transpose(0, 3, 4, 1, 2).reshape(-1, out[0] * out[1])  # [(c,kh,kw), P]
    packed = to_words(np.ascontiguousarray(cols.T).astype(np.uint8))  # [P, words]
    return packed if int(attrs.get("pixel_major", 0)) else packed.T.copy()


@pack_windows.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """Hand-written loops over (word, output row, output column) that store the flat pixel
    oh * OW + ow: affine in ow, so the innermost loop vectorizes with contiguous loads and
    stores (a compute over flat pixels would divide per lane and gather)."""
    x = ins[0]
    kernel, out = _geometry(TensorType(x.shape, x.dtype), attrs)
    strides, pads, dilations = spatial_attrs(attrs, 2)
    channels, (h, w) = x.shape[1], x.shape[2:]
    taps = kernel[0] * kernel[1]
    limit = channels * taps
    pad_value = E.const(int(attrs["pad_value"]), "int32")  # type: ignore[arg-type]
    pixel_major = bool(int(attrs.get("pixel_major", 0)))
    n_words = outs[0].shape[1 if pixel_major else 0]

    def build(bufs: Sequence[Buffer], out_bufs: Sequence[Buffer]) -> Stmt:
        (xb,), (ob,) = bufs, out_bufs

        def word(v: tuple[E.Var, ...]) -> Stmt:
            k4, oh, ow = v
            total: Any = None
            for t in range(4):
                k = k4 * 4 + t
                c, r = k // taps, k % taps
                ih = oh * strides[0] + r // kernel[1] * dilations[0] - pads[0]
                iw = ow * strides[1] + r % kernel[1] * dilations[1] - pads[1]
                inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
                cc = E.minimum(c, E.as_expr(channels - 1, c))  # past the end: any row
                value = unsigned_bytes(xb[(0, cc, ih, iw)], x.dtype)
                part = _word(E.select(inside, value, pad_value), k, limit, t)
                total = part if total is None else total + part
            pixel = oh * out[1] + ow
            return Store(ob, (pixel, k4) if pixel_major else (k4, pixel), total)

        return loop_nest((n_words, *out), "pack_windows", word)

    return extern("pack_windows", [x], [(outs[0].shape, "int32")], build)[0]


# -- pack_rows ------------------------------------------------------------------------------
pack_rows = Op(
    "pack_rows", FusionKind.INJECTIVE,
    doc="x[M, K] int8/uint8 -> words[M, ceil(K/4)] int32 of x's unsigned bytes")


@pack_rows.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank != 2 or x.dtype not in ("int8", "uint8"):
        raise ValueError(f"pack_rows takes an int8/uint8 matrix, got {x}")
    return TensorType((x.shape[0], words(x.shape[1])), "int32")


@pack_rows.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    assert x is not None
    return to_words(unsigned_bytes(x, x.dtype.name).astype(np.uint8))


@pack_rows.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    limit = x.shape[1]

    def body(m: E.Expr, k4: E.Expr) -> E.Expr:
        total: Any = None
        for t in range(4):
            k = k4 * 4 + t
            kk = E.minimum(k, E.as_expr(limit - 1, k))
            part = _word(unsigned_bytes(x[(m, kk)], x.dtype), k, limit, t)
            total = part if total is None else total + part
        return total

    return compute(outs[0].shape, body, "pack_rows")


# -- dot4_matmul ----------------------------------------------------------------------------
dot4_matmul = Op(
    "dot4_matmul", FusionKind.OUT_FUSABLE,
    doc="int32 C[M, N] = sum over words k of dot4(a[M, k], b[k, N]): the byte products of "
        "unsigned bytes (of a, or of b when attrs['unsigned'] is 1) and signed bytes; "
        "attrs['dot'] names the instruction (vnni, sdot) or '' for widening multiplies")


@dot4_matmul.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    if str(attrs.get("dot", "")) not in DOT_KINDS:
        raise ValueError(f"dot {attrs.get('dot')!r} is none of {DOT_KINDS}")
    # dot wd: the signed operand's words are pairs, twice as many
    f = 2 if attrs.get("dot") == "wd" else 1
    fa, fb = (f, 1) if int(attrs.get("unsigned", 0)) else (1, f)
    if a.rank != 2 or b.rank != 2 or a.shape[1] * fb != b.shape[0] * fa \
            or {a.dtype, b.dtype} != {"int32"}:
        raise ValueError(f"dot4_matmul takes int32 words [M, K] @ [K, N], got {a} and {b}")
    return TensorType((a.shape[0], b.shape[1]), "int32")


@dot4_matmul.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    swap = int(attrs.get("unsigned", 0))
    if attrs.get("dot") == "wd":
        a, b = (narrow_pairs(a, 1), b) if swap else (a, narrow_pairs(b, 0))
    if swap:
        return dot4(b.T[None, :, :], a[:, None, :]).sum(-1, dtype=np.int32)
    return dot4(a[:, None, :], b.T[None, :, :]).sum(-1, dtype=np.int32)


@dot4_matmul.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    a, b = ins[0], ins[1]
    kind = str(attrs.get("dot", ""))
    func = f"dot4.{kind}" if kind else "dot4"
    swap = bool(int(attrs.get("unsigned", 0)))
    k = reduce_axis(b.shape[0] if swap else a.shape[1], "dot4.k")

    def body(i: E.Expr, j: E.Expr) -> E.Expr:
        if kind == "wd":  # the signed operand's pairs: words 2k and 2k + 1
            if swap:
                return rsum(E.call(func, b[(k, j)], a[(i, 2 * k)], a[(i, 2 * k + 1)]), k)
            return rsum(E.call(func, a[(i, k)], b[(2 * k, j)], b[(2 * k + 1, j)]), k)
        u, s = (b[(k, j)], a[(i, k)]) if swap else (a[(i, k)], b[(k, j)])
        return rsum(E.call(func, u, s), k)

    return compute(outs[0].shape, body, "dot4_matmul")


@dot4_matmul.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    return 2 * outs[0].size * (b.shape[0] if int(attrs.get("unsigned", 0)) else a.shape[1]) * 4


# -- dot4_conv ------------------------------------------------------------------------------
dot4_conv = Op(
    "dot4_conv", FusionKind.OUT_FUSABLE,
    doc="int32 y[OH, OW, M] = sum over taps (kh, kw) and words c of dot4(x[oh*sh + kh*dh, "
        "ow*sw + kw*dw, c], w[kh, kw, c, M]): a direct conv of channels-last words x[H, W, "
        "C/4] (unsigned bytes, already padded) and weight words w[KH, KW, C/4, M] (signed), "
        "the output channels in the vector lanes (dot wd: w[KH, KW, C/2, M], widen_pairs' "
        "pairs); attrs strides, dilations, dot")


def _taps_out(x: TensorType | tuple[int, ...], w: tuple[int, ...], attrs: Attrs
              ) -> tuple[int, int]:
    shape = x.shape if isinstance(x, TensorType) else x
    sizes = window_out_shape(shape[:2], w[:2], {**attrs, "pads": (0, 0, 0, 0)})
    return sizes[0], sizes[1]


@dot4_conv.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    f = 2 if attrs.get("dot") == "wd" else 1
    if x.rank != 3 or w.rank != 4 or w.shape[2] != x.shape[2] * f \
            or {x.dtype, w.dtype} != {"int32"}:
        raise ValueError(f"dot4_conv takes int32 words x[H, W, C4], w[KH, KW, C4, M], got {x}"
                         f" and {w}")
    if str(attrs.get("dot", "")) not in DOT_KINDS:
        raise ValueError(f"dot {attrs.get('dot')!r} is none of {DOT_KINDS}")
    return TensorType((*_taps_out(x, w.shape, attrs), w.shape[3]), "int32")


@dot4_conv.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    if attrs.get("dot") == "wd":
        w = narrow_pairs(w, 2)
    (sh, sw), _, (dh, dw) = spatial_attrs(attrs, 2)
    oh, ow = _taps_out(x.shape, w.shape, attrs)
    y = np.zeros((oh, ow, w.shape[3]), np.int32)
    for kh in range(w.shape[0]):
        for kw in range(w.shape[1]):
            xs = x[kh * dh:kh * dh + (oh - 1) * sh + 1:sh, kw * dw:kw * dw + (ow - 1) * sw + 1:sw]
            y += dot4(xs[:, :, :, None], w[kh, kw][None, None]).sum(axis=2, dtype=np.int32)
    return y


@dot4_conv.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, w = ins[0], ins[1]
    kind = str(attrs.get("dot", ""))
    func = f"dot4.{kind}" if kind else "dot4"
    (sh, sw), _, (dh, dw) = spatial_attrs(attrs, 2)
    kh, kw = (reduce_axis(n, f"dot4c.k{i}") for i, n in enumerate(w.shape[:2]))
    c = reduce_axis(x.shape[2], "dot4c.c")

    def body(oh: E.Expr, ow: E.Expr, m: E.Expr) -> E.Expr:
        u = x[(oh * sh + kh * dh, ow * sw + kw * dw, c)]
        if kind == "wd":  # weight pairs 2c and 2c + 1
            return rsum(E.call(func, u, w[(kh, kw, 2 * c, m)], w[(kh, kw, 2 * c + 1, m)]),
                        (kh, kw, c))
        return rsum(E.call(func, u, w[(kh, kw, c, m)]), (kh, kw, c))

    return compute(outs[0].shape, body, "dot4_conv")


@dot4_conv.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return 2 * outs[0].size * w.shape[0] * w.shape[1] * x.shape[2] * 4

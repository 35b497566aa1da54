"""Layout transforms: plain NCHW activations to channel-blocked NCHW[x]c and back.

Channels that do not divide by the block are padded to whole blocks: attr `channels` names
the plain side's count; blocking fills the lanes past it with zeros, unblocking drops them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

layout_transform = Op(
    "layout_transform", FusionKind.INJECTIVE,
    doc="channels of x[N, C, *S] blocked or unblocked: attrs src_layout and dst_layout, one "
        "'NCHW' and the other 'NCHW{b}c' (x[N, C/b, *S, b], channel cb*b + ci at [cb, .., ci]); "
        "optional channels: the plain C when it does not divide by b (blocks padded)")


def layout_block(layout: str) -> int:
    """The channel block of a layout name: 0 for plain 'NCHW', b for 'NCHW{b}c'."""
    if layout == "NCHW":
        return 0
    m = re.fullmatch(r"NCHW(\d+)c", layout)
    if m is None or int(m.group(1)) < 1:
        raise ValueError(f"layout {layout!r} is neither 'NCHW' nor 'NCHW<b>c'")
    return int(m.group(1))


def _blocks(attrs: Attrs) -> tuple[int, int]:
    src, dst = layout_block(attrs["src_layout"]), layout_block(attrs["dst_layout"])
    if (src == 0) == (dst == 0):
        raise ValueError(f"layout_transform from {attrs['src_layout']} to "
                         f"{attrs['dst_layout']}: exactly one side must be blocked")
    return src, dst


def block_array(x: np.ndarray, b: int) -> np.ndarray:
    """[N, C, *S] -> [N, ceil(C/b), *S, b], the lanes past C zero."""
    n, c, *s = x.shape
    if c % b:
        x = np.concatenate([x, np.zeros((n, -c % b, *s), x.dtype)], axis=1)
    return np.ascontiguousarray(np.moveaxis(x.reshape(n, -(-c // b), b, *s), 2, -1))


def unblock_array(x: np.ndarray, channels: int | None = None) -> np.ndarray:
    """[N, C/b, *S, b] -> [N, C, *S], only the first `channels` when given."""
    n, cb, *s, b = x.shape
    plain = np.moveaxis(x, -1, 2).reshape(n, cb * b, *s)
    return np.ascontiguousarray(plain if channels is None else plain[:, :channels])


def padded_channels(channels: int, block: int) -> int:
    """`channels` rounded up to whole blocks."""
    return -(-channels // block) * block


@layout_transform.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    src, dst = _blocks(attrs)
    channels = attrs.get("channels")
    if dst:
        if x.rank < 3 or (x.shape[1] % dst and channels != x.shape[1]):
            raise ValueError(f"{x} has no channel axis divisible by the block {dst} "
                             f"(pass channels={x.shape[1]} to pad it)")
        return TensorType((x.shape[0], -(-x.shape[1] // dst), *x.shape[2:], dst), x.dtype)
    if x.rank < 4 or x.shape[-1] != src:
        raise ValueError(f"{x} is not blocked by {src} along its last axis")
    full = x.shape[1] * src
    if channels is not None and not full - src < int(channels) <= full:
        raise ValueError(f"{channels} channels do not fill the last of {x.shape[1]} blocks "
                         f"of {src}")
    return TensorType((x.shape[0], full if channels is None else int(channels),
                       *x.shape[2:-1]), x.dtype)


@layout_transform.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    _, dst = _blocks(attrs)
    return block_array(ins[0], dst) if dst else unblock_array(ins[0], attrs.get("channels"))


@layout_transform.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    src, dst = _blocks(attrs)
    if dst:
        channels = x.shape[1]

        def block(n: E.Expr, cb: E.Expr, *r: E.Expr) -> E.Expr:
            c = cb * dst + r[-1]
            if channels % dst == 0:
                return x[(n, c, *r[:-1])]
            # a pad lane reads the last channel (an address in bounds) and keeps zero
            inside = c < channels
            value = x[(n, E.minimum(c, channels - 1), *r[:-1])]
            return E.select(inside, value, E.const(0, value.dtype))

        return compute(outs[0].shape, block, "layout_block")

    def unblock(n: E.Expr, c: E.Expr, *s: E.Expr) -> E.Expr:
        return x[(n, c // src, *s, c % src)]

    return compute(outs[0].shape, unblock, "layout_unblock")

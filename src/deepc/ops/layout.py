"""Layout transforms: plain NCHW activations to channel-blocked NCHW[x]c and back."""

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
        "'NCHW' and the other 'NCHW{b}c' (x[N, C/b, *S, b], channel cb*b + ci at [cb, .., ci])")


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
    """[N, C, *S] -> [N, C/b, *S, b]."""
    n, c, *s = x.shape
    return np.ascontiguousarray(np.moveaxis(x.reshape(n, c // b, b, *s), 2, -1))


def unblock_array(x: np.ndarray) -> np.ndarray:
    """[N, C/b, *S, b] -> [N, C, *S]."""
    n, cb, *s, b = x.shape
    return np.ascontiguousarray(np.moveaxis(x, -1, 2).reshape(n, cb * b, *s))


@layout_transform.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    src, dst = _blocks(attrs)
    if dst:
        if x.rank < 3 or x.shape[1] % dst:
            raise ValueError(f"{x} has no channel axis divisible by the block {dst}")
        return TensorType((x.shape[0], x.shape[1] // dst, *x.shape[2:], dst), x.dtype)
    if x.rank < 4 or x.shape[-1] != src:
        raise ValueError(f"{x} is not blocked by {src} along its last axis")
    return TensorType((x.shape[0], x.shape[1] * src, *x.shape[2:-1]), x.dtype)


@layout_transform.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    _, dst = _blocks(attrs)
    return block_array(ins[0], dst) if dst else unblock_array(ins[0])


@layout_transform.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    src, dst = _blocks(attrs)
    if dst:
        return compute(outs[0].shape, lambda n, cb, *r: x[(n, cb * dst + r[-1], *r[:-1])],
                       "layout_block")

    def unblock(n: E.Expr, c: E.Expr, *s: E.Expr) -> E.Expr:
        return x[(n, c // src, *s, c % src)]

    return compute(outs[0].shape, unblock, "layout_unblock")

"""col2im: columns x[N, C*prod(K), L] (one column of K taps per sliding-window position,
as im2col produces them) summed back into an image out[N, C, *image].

Attrs: image (the spatial output shape), block (K), strides, pads (begins then ends) and
dilations. The L positions tile the padded image row-major. Each output pixel gathers the
taps that cover it: along an axis, tap k of the block at position b covers
b*stride + k*dilation - pad_begin.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op
from deepc.ops.window import all_of

col2im = Op("col2im", FusionKind.OPAQUE,
            doc="sum columns x[N, C*prod(block), L] into out[N, C, *image]; attrs image, "
                "block, strides, pads, dilations")


def _geometry(attrs: Attrs) -> tuple[list[int], list[int], list[int], list[int], list[int],
                                     list[int]]:
    image, block = list(attrs["image"]), list(attrs["block"])
    nd = len(image)
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    pads = list(attrs.get("pads") or [0] * (2 * nd))
    counts = [(image[i] + pads[i] + pads[nd + i] - dilations[i] * (block[i] - 1) - 1)
              // strides[i] + 1 for i in range(nd)]
    return image, block, strides, dilations, pads, counts


@col2im.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    image, block, _, _, _, counts = _geometry(attrs)
    taps = math.prod(block)
    if x.rank != 3 or x.shape[1] % taps or x.shape[2] != math.prod(counts) or min(counts) < 1:
        raise ValueError(f"columns {x} do not fit blocks {block} over image {image} "
                         f"({math.prod(counts)} positions)")
    return TensorType((x.shape[0], x.shape[1] // taps, *image), x.dtype)


@col2im.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    image, block, strides, dilations, pads, counts = _geometry(attrs)
    nd = len(image)
    n, c = x.shape[0], x.shape[1] // math.prod(block)
    padded = np.zeros((n, c, *(image[i] + pads[i] + pads[nd + i] for i in range(nd))), x.dtype)
    cols = x.reshape(n, c, *block, *counts)
    for tap in itertools.product(*(range(k) for k in block)):
        dst = tuple(slice(t * d, t * d + s * (m - 1) + 1, s)
                    for t, d, s, m in zip(tap, dilations, strides, counts))
        padded[(slice(None), slice(None), *dst)] += cols[(slice(None), slice(None), *tap)]
    return np.ascontiguousarray(padded[(slice(None), slice(None),
                                        *(slice(pads[i], pads[i] + image[i])
                                          for i in range(nd)))])


@col2im.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """A sum over the block's taps; a tap contributes where it lands on a block position."""
    x = ins[0]
    _, block, strides, dilations, pads, counts = _geometry(attrs)
    taps = [reduce_axis(k, f"col2im.k{i}") for i, k in enumerate(block)]

    def body(n: E.Var, c: E.Var, *o: E.Var) -> E.Expr:
        conds, positions = [], []
        for i, k in enumerate(taps):
            t = o[i] + pads[i] - k * dilations[i]
            pos = t // strides[i]
            conds += [t >= 0, pos < counts[i]]
            if strides[i] > 1:
                conds.append((t % strides[i]).eq(0))
            positions.append(E.minimum(E.maximum(pos, E.as_expr(0, pos)),
                                       E.as_expr(counts[i] - 1, pos)))
        row, col = c, E.as_expr(0, c)
        for i, k in enumerate(taps):
            row = row * block[i] + k
            col = col * counts[i] + positions[i]
        cond = all_of(conds)
        v = x[(n, row, col)]
        return rsum(v if cond is None else E.select(cond, v, E.const(0, x.dtype)), taps)

    return compute(outs[0].shape, body, "col2im")

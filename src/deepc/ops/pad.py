"""Padding: `pad` with constant, reflect, edge and wrap modes; negative pads crop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType, np_dtype
from deepc.ops.registry import FusionKind, Op

MODES = ("constant", "reflect", "edge", "wrap")

pad = Op("pad", FusionKind.INJECTIVE, doc="""pad every axis; attrs:
- `pads`: 2*rank ints, all begins then all ends (ONNX order); a negative pad crops;
- `mode`: constant | reflect | edge | wrap;
- `value`: the fill for mode constant, a Python number (or bool) of the input's kind.
Cropping happens before padding, so reflect/edge/wrap read the cropped tensor.""")


def _pads(x: TensorType, attrs: Attrs) -> tuple[list[int], list[int]]:
    pads = [int(p) for p in attrs["pads"]]  # type: ignore[union-attr]
    if len(pads) != 2 * x.rank:
        raise ValueError(f"pads has {len(pads)} values; rank {x.rank} needs {2 * x.rank}")
    return pads[:x.rank], pads[x.rank:]


@pad.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    begins, ends = _pads(x, attrs)
    mode = attrs["mode"]
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    shape = []
    for d, b, e in zip(x.shape, begins, ends):
        cropped = d + min(b, 0) + min(e, 0)
        if cropped < 0:
            raise ValueError(f"pads {b}, {e} crop more than dimension {d}")
        grows = b > 0 or e > 0
        if grows and mode != "constant" and cropped == 0:
            raise ValueError(f"mode {mode} cannot pad an empty axis")
        if grows and mode == "reflect" and max(b, e) >= cropped:
            raise ValueError(f"reflect pads {b}, {e} must be smaller than dimension {cropped}")
        shape.append(cropped + max(b, 0) + max(e, 0))
    return TensorType(tuple(shape), x.dtype)


@pad.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = ins[0]
    begins, ends = _pads(TensorType.of(x), attrs)
    x = x[tuple(slice(-min(b, 0), d + min(e, 0)) for d, b, e in zip(x.shape, begins, ends))]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends)]
    mode = str(attrs["mode"])
    if mode == "constant":
        return np.pad(x, widths, mode="constant",
                      constant_values=np.asarray(attrs["value"]).astype(x.dtype))
    return np.pad(x, widths, mode=mode)


def _source(o: E.Expr, dim: int, begin: int, end: int, mode: str) -> tuple[E.Expr, list[E.Expr]]:
    """The input index that output index `o` reads along one axis, and the conditions under
    which it lies inside (mode constant; other modes always read inside).

    `r` below indexes the cropped axis [crop, crop + n); only a side that grows needs a rule,
    and reflect needs one mirror per side since its pads are shorter than the axis."""
    crop, n, pb = -min(begin, 0), dim + min(begin, 0) + min(end, 0), max(begin, 0)
    r = o - pb
    if mode == "constant":
        inside = ([o >= pb] if begin > 0 else []) + ([o < pb + n] if end > 0 else [])
        return r + crop, inside
    if mode == "wrap" and (begin > 0 or end > 0):
        lift = -(-pb // n) * n  # a multiple of n that makes the dividend non-negative
        return (o + (lift - pb)) % n + crop, []
    if begin > 0:
        r = E.maximum(r, 0) if mode == "edge" else E.maximum(r, -r)
    if end > 0:
        r = E.minimum(r, n - 1) if mode == "edge" else E.minimum(r, 2 * (n - 1) - r)
    return r + crop, []


@pad.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, mode = ins[0], str(attrs["mode"])
    begins, ends = _pads(TensorType(x.shape, x.dtype), attrs)
    fill = E.const(np.asarray(attrs["value"]).astype(np_dtype(x.dtype)).item(), x.dtype)

    def fn(*o: E.Var) -> E.Expr:
        srcs = [_source(*args, mode) for args in zip(o, x.shape, begins, ends)]
        inside = [c for _, conds in srcs for c in conds]
        value = x[tuple(s for s, _ in srcs)]
        if not inside:
            return value
        cond = inside[0]
        for c in inside[1:]:
            cond = cond & c
        return E.select(cond, value, fill)

    return compute(outs[0].shape, fn, "pad")

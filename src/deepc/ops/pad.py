"""Padding: `pad` with constant, reflect, edge and wrap modes; negative pads crop."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
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

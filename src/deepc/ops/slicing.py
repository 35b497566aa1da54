"""slice: strided slices with normalized (non-negative, in-range) attributes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.movement import data_input, int_tuple
from deepc.ops.registry import FusionKind, Op

# -- slice --------------------------------------------------------------------------------------
slice_ = Op("slice", FusionKind.INJECTIVE, doc="""strided slice, attributes normalized:

out[..., i, ...] = x[..., starts[k] + i * steps[k], ...] along each listed axis, where
- `axes`: distinct axes in [0, rank), ascending; axes not listed are taken whole;
- `steps`: non-zero integers;
- `starts`: first index read, in [0, dim) (0 when the slice is empty);
- `ends`: exclusive end in [-1, dim]; -1 only with a negative step (run down through index 0),
  equal to `starts` when the slice is empty.
The length along axis k is max(0, ceil((ends[k] - starts[k]) / steps[k])). The converter
resolves ONNX's negative and out-of-range starts/ends into this form.""")


def slice_specs(attrs: Attrs) -> list[tuple[int, int, int, int]]:
    """(axis, start, end, step) of each sliced axis."""
    return list(zip(*(int_tuple(attrs, k) for k in ("axes", "starts", "ends", "steps"))))


def slice_lengths(shape: Sequence[int], attrs: Attrs) -> tuple[int, ...]:
    out = list(shape)
    for a, s, e, st in slice_specs(attrs):
        out[a] = max(0, -((s - e) // st))  # ceil division by a signed step
    return tuple(out)


@slice_.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = data_input(ins)
    axes, starts, ends, steps = (int_tuple(attrs, k) for k in ("axes", "starts", "ends", "steps"))
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise ValueError("axes, starts, ends and steps differ in length")
    if list(axes) != sorted(set(axes)) or any(not 0 <= a < x.rank for a in axes):
        raise ValueError(f"axes {axes} must be distinct, ascending and in [0, {x.rank})")
    if 0 in steps:
        raise ValueError(f"steps {steps} contain 0")
    lengths = slice_lengths(x.shape, attrs)
    for a, s, e, st in zip(axes, starts, ends, steps):
        dim, last = x.shape[a], s + (lengths[a] - 1) * st
        if (lengths[a] and not (0 <= s < dim and 0 <= last < dim)):
            raise ValueError(f"axis {a}: start {s}, end {e}, step {st} are not normalized "
                             f"for dimension {dim}")
    return TensorType(lengths, x.dtype)


@slice_.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    index = [slice(None)] * ins[0].ndim
    for a, s, e, st in slice_specs(attrs):
        index[a] = slice(s, e if e >= 0 else None, st)  # end -1: through index 0
    return np.ascontiguousarray(ins[0][tuple(index)])


@slice_.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    first = dict.fromkeys(range(x.rank), 0)
    step = dict.fromkeys(range(x.rank), 1)
    for a, s, _, st in slice_specs(attrs):
        first[a], step[a] = s, st
    return compute(outs[0].shape, lambda *i: x[tuple(
        first[k] + o * step[k] for k, o in enumerate(i))], "slice")

"""What the data-movement ops (shape, concat, slicing, depth_space, resize) share: the data
input, int-tuple attributes, and the stage of an output with no elements."""

from __future__ import annotations

from collections.abc import Sequence

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType


def data_input(ins: Sequence[TensorType | None]) -> TensorType:
    """The first input's type, which must be present."""
    x = ins[0]
    if x is None:
        raise ValueError("the data input is missing")
    return x


def int_tuple(attrs: Attrs, key: str) -> tuple[int, ...]:
    """An int-list attribute as a tuple of ints."""
    return tuple(int(v) for v in attrs[key])  # type: ignore[union-attr]


def empty_output(out: TensorType, name: str) -> Tensor | None:
    """A stage for an output with no elements (its body never runs), or None if it has some.
    Index formulas divide by extents, so ops call this before building them."""
    if out.size:
        return None
    return compute(out.shape, lambda *i: E.const(0, out.dtype), name)

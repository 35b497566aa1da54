"""Joining and cutting along one axis: concat and split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.common import present
from deepc.ops.movement import data_input, empty_output, int_tuple
from deepc.ops.registry import FusionKind, Op

# -- concat -------------------------------------------------------------------------------------
concat = Op("concat", FusionKind.INJECTIVE, doc="join the inputs along attrs['axis'] (>= 0)")


@concat.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    xs, axis = present(ins), int(attrs["axis"])  # type: ignore[arg-type]
    if not xs:
        raise ValueError("concat needs at least one input")
    first = xs[0]
    if not 0 <= axis < first.rank:
        raise ValueError(f"axis {axis} out of range for rank {first.rank}")
    for x in xs[1:]:
        if x.dtype != first.dtype:
            raise ValueError(f"mixed dtypes {first.dtype} and {x.dtype}")
        if x.rank != first.rank or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise ValueError(f"shapes {first.shape} and {x.shape} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(tuple(shape), first.dtype)


@concat.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.concatenate(present(ins), axis=int(attrs["axis"]))  # type: ignore[arg-type]


@concat.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    axis = int(attrs["axis"])  # type: ignore[arg-type]
    empty = empty_output(outs[0], "concat")
    if empty is not None:
        return empty
    parts, offset = [], 0  # (input, its first index on the axis), empty inputs dropped
    for x in present(ins):
        if x.shape[axis]:
            parts.append((x, offset))
            offset += x.shape[axis]

    def fn(*i: E.Var) -> E.Expr:
        def load(x: Tensor, start: int) -> E.Expr:
            return x[(*i[:axis], i[axis] - start, *i[axis + 1:])]

        # a chain of selects, each guarding the loads of one input
        value = load(*parts[-1])
        for x, start in reversed(parts[:-1]):
            value = E.select(i[axis] < start + x.shape[axis], load(x, start), value)
        return value

    return compute(outs[0].shape, fn, "concat")


# -- split --------------------------------------------------------------------------------------
split = Op("split", FusionKind.INJECTIVE,
           doc="cut x along attrs['axis'] (>= 0) into pieces of attrs['sizes']; one output each")


@split.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, axis, sizes = data_input(ins), int(attrs["axis"]), int_tuple(attrs, "sizes")  # type: ignore[arg-type]
    if not 0 <= axis < x.rank:
        raise ValueError(f"axis {axis} out of range for rank {x.rank}")
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ValueError(f"sizes {sizes} do not add up to dimension {x.shape[axis]}")
    return [TensorType((*x.shape[:axis], s, *x.shape[axis + 1:]), x.dtype) for s in sizes]


@split.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> tuple[np.ndarray, ...]:
    bounds = np.cumsum(int_tuple(attrs, "sizes"))[:-1]
    parts = np.split(ins[0], bounds, axis=int(attrs["axis"]))  # type: ignore[arg-type]
    return tuple(np.ascontiguousarray(p) for p in parts)


@split.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> list[Tensor]:
    x, axis = ins[0], int(attrs["axis"])  # type: ignore[arg-type]
    starts = np.cumsum((0, *int_tuple(attrs, "sizes")))

    def piece(k: int, start: int) -> Tensor:
        return compute(outs[k].shape, lambda *i: x[(*i[:axis], i[axis] + start, *i[axis + 1:])],
                       f"split{k}")

    return [piece(k, int(s)) for k, s in enumerate(starts[:-1])]

"""Shared type rules and registration helpers for op families."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op


def broadcast_shape(*shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy broadcasting of static shapes; raises ValueError when they do not broadcast."""
    return tuple(np.broadcast_shapes(*(tuple(s) for s in shapes)))


def normalize_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def normalize_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    return tuple(sorted({normalize_axis(a, rank) for a in axes}))


def present(ins: Sequence[Any]) -> list[Any]:
    return [i for i in ins if i is not None]


def same_as_first(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    assert ins[0] is not None
    return ins[0]


def broadcast_index(axes: Sequence[Any], in_shape: Sequence[int]) -> tuple[Any, ...]:
    """Indices into an input of shape `in_shape` for output axes under numpy broadcasting."""
    lead = len(axes) - len(in_shape)
    return tuple(0 if n == 1 else axes[lead + k] for k, n in enumerate(in_shape))


def unary(name: str, fn: Callable[..., np.ndarray], *, out_dtype: str | None = None,
          kind: FusionKind = FusionKind.ELEMWISE, doc: str = "",
          te: Callable[..., Any] | None = None) -> Op:
    """Register an elementwise op of one input; `fn(x, attrs)` is its numpy reference and
    `te(x, attrs)` (an expression of the input element) its compute definition."""
    op = Op(name, kind, doc=doc)
    if te is not None:

        @op.def_compute
        def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Any:
            from deepc.ir.tensor import compute

            x = ins[0]
            return compute(x.shape, lambda *i: te(x[i], attrs).astype(outs[0].dtype), name)

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        return TensorType(x.shape, out_dtype or x.dtype)

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        out = fn(ins[0], attrs)
        return np.asarray(out).astype(out_dtype or ins[0].dtype, copy=False)

    return op


def nary(name: str, fn: Callable[..., np.ndarray], *, out_dtype: str | None = None,
         doc: str = "", te: Callable[..., Any] | None = None) -> Op:
    """Register a broadcasting op of two or more inputs; `fn(*xs, attrs)` is its reference,
    `te(*elements, attrs)` its compute definition."""
    op = Op(name, FusionKind.BROADCAST, doc=doc)
    if te is not None:

        @op.def_compute
        def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Any:
            from deepc.ir.tensor import compute

            xs = present(ins)
            shape = outs[0].shape
            return compute(shape, lambda *i: te(*(x[broadcast_index(i, x.shape)] for x in xs),
                                                 attrs).astype(outs[0].dtype), name)

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        xs = present(ins)
        return TensorType(broadcast_shape(*(x.shape for x in xs)), out_dtype or xs[0].dtype)

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        xs = present(ins)
        out = fn(*xs, attrs)
        return np.asarray(out).astype(out_dtype or xs[0].dtype, copy=False)

    return op

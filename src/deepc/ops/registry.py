"""The op table: each deepc operator's type rule, fusion kind, numpy reference and compute.

An op is declared once with `Op(name, kind)` and its rules are attached with decorators, so
one module holds everything about an op family side by side:

    relu = Op("relu", FusionKind.ELEMWISE)

    @relu.infer
    def _(ins, attrs): return ins[0]

    @relu.reference
    def _(ins, attrs): return np.maximum(ins[0], 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

import numpy as np

from deepc.errors import DeepcError
from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType


class FusionKind(IntEnum):
    """How an op may fuse with its neighbours (TVM's classification; lower fuses more)."""

    ELEMWISE = 0  # out[i] = f(in[i]) with identical shapes
    BROADCAST = 1  # elementwise with numpy broadcasting
    INJECTIVE = 2  # each output element reads a computable set of inputs (reshape, gather)
    REDUCTION = 3  # sums, maxima, norms
    OUT_FUSABLE = 4  # conv, matmul: elementwise epilogues fuse into their output
    OPAQUE = 8  # sorts, recurrences: never fused


InferFn = Callable[[Sequence[TensorType | None], Attrs], TensorType | Sequence[TensorType]]
ReferenceFn = Callable[[Sequence[Any], Attrs], Any]
FlopsFn = Callable[[Sequence[TensorType | None], Sequence[TensorType], Attrs], int]

REGISTRY: dict[str, Op] = {}


class Op:
    """An operator of the graph IR and the rules attached to it."""

    def __init__(self, name: str, kind: FusionKind, *, doc: str = ""):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} registered twice")
        self.name = name
        self.kind = kind
        self.doc = doc
        self._infer: InferFn | None = None
        self._reference: ReferenceFn | None = None
        self._flops: FlopsFn | None = None
        self.compute: Callable[..., Any] | None = None
        REGISTRY[name] = self

    def __repr__(self) -> str:
        return f"Op({self.name!r}, {self.kind.name})"

    # -- decorators attaching rules -------------------------------------------------------
    def infer(self, fn: InferFn) -> InferFn:
        self._infer = fn
        return fn

    def reference(self, fn: ReferenceFn) -> ReferenceFn:
        self._reference = fn
        return fn

    def flops(self, fn: FlopsFn) -> FlopsFn:
        self._flops = fn
        return fn

    def def_compute(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.compute = fn
        return fn

    # -- applying the rules -----------------------------------------------------------------
    def infer_types(self, ins: Sequence[TensorType | None], attrs: Attrs) -> tuple[TensorType, ...]:
        if self._infer is None:
            raise NotImplementedError(f"op {self.name!r} has no type rule")
        out = self._infer(ins, attrs)
        return (out,) if isinstance(out, TensorType) else tuple(out)

    def evaluate(self, ins: Sequence[Any], attrs: Attrs) -> tuple[np.ndarray, ...]:
        if self._reference is None:
            raise NotImplementedError(f"op {self.name!r} has no reference implementation")
        out = self._reference(ins, attrs)
        outs = (out,) if not isinstance(out, tuple | list) else tuple(out)
        return tuple(np.asarray(o) for o in outs)

    def estimate_flops(
        self, ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs
    ) -> int:
        if self._flops is not None:
            return int(self._flops(ins, outs, attrs))
        if self.kind in (FusionKind.ELEMWISE, FusionKind.BROADCAST):
            return sum(o.size for o in outs)
        if self.kind == FusionKind.REDUCTION:
            return sum(i.size for i in ins if i is not None)
        return 0


def get_op(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DeepcError(f"no op named {name!r} in the op library") from None


def all_ops() -> dict[str, Op]:
    return dict(REGISTRY)

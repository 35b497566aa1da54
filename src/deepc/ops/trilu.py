"""trilu: the upper or lower triangle of the last two axes, zero elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.indices import input_types
from deepc.ops.registry import FusionKind, Op

# out[.., i, j] depends only on x[.., i, j] and (i, j): elementwise with an index predicate
trilu = Op("trilu", FusionKind.ELEMWISE,
           doc="keep the upper (j - i >= k) or lower (j - i <= k) triangle of the last two "
               "axes, zero elsewhere")


@trilu.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    (x,) = input_types(ins, 1)
    if x.rank < 2:
        raise ValueError(f"needs rank >= 2, got rank {x.rank}")
    return x


@trilu.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, k = ins[0], int(attrs["k"])
    return np.triu(x, k) if attrs["upper"] else np.tril(x, k)


@trilu.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, k, upper = ins[0], int(attrs["k"]), bool(attrs["upper"])

    def fn(*o: E.Var) -> E.Expr:
        keep = o[-1] - o[-2] >= k if upper else o[-1] - o[-2] <= k
        return E.select(keep, x[o], E.const(0, x.dtype))

    return compute(x.shape, fn, "trilu")

"""det: the determinant of each square matrix in x[..., M, M] -> out[...].

The compute is the Leibniz sum over the M! permutations, one product of M loads each, an
index formula with no loops or pivoting; it is exact in structure and cheap for the small
matrices models carry (M <= 5, 120 terms), and refused above that.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

MAX_ORDER = 5

det = Op("det", FusionKind.INJECTIVE, doc="determinant of x[..., M, M] (M <= 5)")


@det.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank < 2 or x.shape[-1] != x.shape[-2] or not x.dtype.startswith("float"):
        raise ValueError(f"needs float square matrices [..., M, M], got {x}")
    if x.shape[-1] > MAX_ORDER:
        raise ValueError(f"{x.shape[-1]}x{x.shape[-1]} determinants are not supported "
                         f"(up to {MAX_ORDER}x{MAX_ORDER})")
    return TensorType(x.shape[:-2], x.dtype)


@det.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.asarray(np.linalg.det(ins[0])).astype(ins[0].dtype)


def _parity(perm: Sequence[int]) -> int:
    inversions = sum(a > b for i, a in enumerate(perm) for b in perm[i + 1:])
    return -1 if inversions % 2 else 1


@det.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    m = x.shape[-1]
    acc = "float64" if x.dtype == "float64" else "float32"

    def body(*o: E.Var) -> E.Expr:
        total: E.Expr | None = None
        for perm in itertools.permutations(range(m)):
            term: E.Expr = E.const(_parity(perm), acc)
            for row, col in enumerate(perm):
                term = term * x[(*o, row, col)].astype(acc)
            total = term if total is None else total + term
        return (total if total is not None else E.const(1, acc)).astype(outs[0].dtype)

    return compute(outs[0].shape, body, "det")

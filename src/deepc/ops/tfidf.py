"""`tfidf_vectorizer`: rows of integer tokens -> counts (times weights) of pooled n-grams.

An n-gram of length n >= 2 matches at start s with skip d (0..max_skip) when the tokens at
s, s + (d+1), ..., s + (n-1)(d+1) are its items; a unigram is counted once per position,
whatever the skip. Only n-grams with min_gram <= n <= max_gram are counted. Pool entry j adds
its count times weights[j] to output column out_index[j].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

tfidf_vectorizer = Op(
    "tfidf_vectorizer", FusionKind.OPAQUE,
    doc="per row of x ([C] or [B, C] ints): weighted counts of the n-grams in attrs['pool'] "
        "(tuples of tokens), skipping up to attrs['max_skip'] tokens between items, into "
        "columns attrs['out_index'] of attrs['size'] (float32)")


def _counted(attrs: Attrs) -> list[tuple[tuple[int, ...], int, float]]:
    """(n-gram, output column, weight) for the pool entries whose length is counted."""
    lo, hi = int(attrs["min_gram"]), int(attrs["max_gram"])
    return [(tuple(g), int(k), float(w)) for g, k, w in
            zip(attrs["pool"], attrs["out_index"], attrs["weights"]) if lo <= len(g) <= hi]


@tfidf_vectorizer.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    if x.rank not in (1, 2) or not x.dtype.startswith("int"):
        raise ValueError(f"x {x} must be [C] or [B, C] int32/int64 tokens")
    return TensorType((*x.shape[:-1], int(attrs["size"])), "float32")


@tfidf_vectorizer.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x = np.asarray(ins[0])
    rows = x.reshape(-1, x.shape[-1])
    out = np.zeros((rows.shape[0], int(attrs["size"])), np.float32)
    for r, row in enumerate(rows):
        for gram, col, weight in _counted(attrs):
            n = len(gram)
            for step in range(1, (int(attrs["max_skip"]) + 2) if n > 1 else 2):
                for s in range(len(row) - step * (n - 1)):
                    if all(row[s + step * k] == gram[k] for k in range(n)):
                        out[r, col] += weight
    return out.reshape((*x.shape[:-1], out.shape[-1]))


@tfidf_vectorizer.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    c = x.shape[-1]
    counted = _counted(attrs)
    d = reduce_axis(int(attrs["max_skip"]) + 1, "d")
    s = reduce_axis(c, "s")

    def body(*o: E.Var) -> E.Expr:
        row, col = o[:-1], o[-1]
        step = d + 1
        total: E.Expr = E.const(0.0, "float32")
        for gram, k, weight in counted:
            n = len(gram)
            hit = col.eq(k)
            hit = hit & (s + step * (n - 1) < c) if n > 1 else hit & d.eq(0)
            for i, token in enumerate(gram):
                at = E.minimum(s + step * i, E.as_expr(c - 1, s))
                hit = hit & x[(*row, at)].eq(E.const(token, x.dtype))
            total = total + E.select(hit, E.const(weight, "float32"), E.const(0.0, "float32"))
        return rsum(total, (d, s))

    return compute(outs[0].shape, body, "tfidf_vectorizer")

"""Normalized exponentials along one axis: `softmax`, `log_softmax` and `hardmax`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops.common import normalize_axis
from deepc.ops.conv import acc_dtype
from deepc.ops.registry import FusionKind, Op


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    """1 at the first maximum along the axis, 0 elsewhere."""
    out = np.zeros_like(x)
    np.put_along_axis(out, np.expand_dims(x.argmax(axis=axis), axis), 1, axis=axis)
    return out


def _along_axis(name: str, fn: Callable[[np.ndarray, int], np.ndarray], doc: str) -> Op:
    op = Op(name, FusionKind.REDUCTION, doc=f"{doc}; attr axis (non-negative)")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        if x.rank == 0:
            raise ValueError(f"{name} needs an input of rank >= 1")
        normalize_axis(int(attrs["axis"]), x.rank)
        return x

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x = ins[0]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = fn(x.astype(acc_dtype(x.dtype), copy=False), int(attrs["axis"]))
        return y.astype(x.dtype, copy=False)

    @op.flops
    def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
        return 4 * outs[0].size  # max, subtract, exp, sum and divide per element, roughly

    return op


softmax = _along_axis("softmax", _softmax, "exp(x) / sum(exp(x)) along axis")
log_softmax = _along_axis("log_softmax", _log_softmax, "x - log(sum(exp(x))) along axis")
hardmax = _along_axis("hardmax", _hardmax, "one-hot of the first maximum along axis")

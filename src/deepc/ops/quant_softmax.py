"""`quantized_softmax`: the softmax of int8/uint8 values along one axis, requantized to
int8/uint8 by onnxruntime's QLinearSoftmax arithmetic (the kernel its CPU provider runs in
place of DequantizeLinear -> Softmax -> QuantizeLinear).

That arithmetic is not the float softmax quantized: for a row x and a 256-entry float32 table
T (`softmax_table`),

    m = max(x);  e_i = T[255 - m + x_i];  s = e_0 + e_1 + ... + e_{n-1}  (float32, in order)
    y_i = saturate(round_half_even(e_i * Y / s) + zero_y),  Y = floor(1 / scale_y)

where the quotient is taken in float64 (e_i * Y is exact there). Y drops the fraction of
1 / scale_y (2668.8 -> 2668 in the encoder's first layer, 3e-4 less), which moves 0.7% of
the bytes by one unit against a float softmax quantized: deepc, when it ran the float ops,
ended 2 units off onnxruntime's int8 encoder. Matched to the byte on 20 million outputs of
onnxruntime 1.32's kernel: the in-order float32 sum, the float64 quotient and the table's float32
logarithm each matter at ties (a pairwise sum or a float32 quotient leave a few bytes per
million one unit off). onnxruntime's int8 kernel wraps a value above 127 (-128 for a
probability near one); this one saturates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import IN_ORDER, MATERIALIZED, Tensor, compute, rmax, rsum
from deepc.ir.types import TensorType, np_dtype
from deepc.ops.common import normalize_axis
from deepc.ops.quant import COMPUTE, INT_RANGES
from deepc.ops.registry import FusionKind, Op
from deepc.ops.softmax import row_of, stage_along

BYTES = ("int8", "uint8")
WIDE = "float64"  # the quotient's dtype
# headroom below float32's max left for the row sum, as ln of a factor (e^5 ~ 148)
SUM_HEADROOM = 5.0


def softmax_table(scale: float, n: int) -> np.ndarray:
    """T[k] = exp((k - 255 + shift) * scale) in float64, rounded to float32: e^(x - max) of a
    byte k - 255 below the row's maximum, scaled up by e^(shift * scale) so that n of them
    sum near float32's largest values (the factor cancels in the division). The logarithm
    is float32's (logf of a float32 quotient), the rest float64, as onnxruntime forms it."""
    fmax = np.finfo(np.float32).max
    log = float(np.float32(math.log(float(fmax / np.float32(n)))))
    shift = max(0.0, log - SUM_HEADROOM) / float(np.float32(scale))
    return np.array([math.exp((k - 255 + shift) * float(np.float32(scale)))
                     for k in range(256)], np.float32)


def output_factor(scale: float) -> float:
    """Y = floor(1 / scale) in float32, what the quotients are scaled by."""
    return float(np.floor(np.float32(1) / np.float32(scale)))


quantized_softmax = Op(
    "quantized_softmax", FusionKind.REDUCTION,
    doc="onnxruntime's QLinearSoftmax of int8/uint8 x along attrs['axis'] with a float32 "
        "table (softmax_table): y = saturate(round(e * factor / sum(e)) + zero) in "
        "attrs['to'], e = table[255 - max(x) + x], the sum in float32 in order, the "
        "quotient in float64")


@quantized_softmax.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, table = ins[0], ins[1]
    assert x is not None and table is not None
    to = str(attrs["to"])
    if x.dtype not in BYTES or to not in BYTES or table.shape != (256,) \
            or table.dtype != COMPUTE:
        raise ValueError(f"quantized_softmax takes int8/uint8 x and a float32 table of 256 "
                         f"into int8/uint8, got {x}, {table} -> {to}")
    normalize_axis(int(attrs["axis"]), x.rank)
    return TensorType(x.shape, to)


@quantized_softmax.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, table = ins[0], ins[1]
    assert x is not None and table is not None
    axis, to = int(attrs["axis"]), str(attrs["to"])
    xi = x.astype(np.int64)
    e = table[255 - xi.max(axis=axis, keepdims=True) + xi]
    # accumulate adds in order, as the kernel's loop does (np.sum would pair terms)
    total = np.take(np.add.accumulate(e, axis=axis, dtype=np.float32), [-1], axis=axis)
    y = np.rint(e.astype(WIDE) * float(attrs["factor"]) / total.astype(WIDE)) + int(attrs["zero"])
    return np.clip(y, *INT_RANGES[to]).astype(np_dtype(to))


@quantized_softmax.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, table = ins[0], ins[1]
    axis = int(attrs["axis"])
    top = stage_along(x, axis, "qsoftmax_max", lambda i, r: rmax(x[i], r))

    def exp(*i: E.Var) -> E.Expr:
        shift = E.const(255, "int64") - top[row_of(i, axis)].astype("int64")
        return table[(shift + x[i].astype("int64"),)]

    # the table's values once, along the rows (contiguous bytes), for the sum's lanes across
    # rows and the quotients: inlined, both gathered bytes (a softmax 0.081 -> 0.064 ms)
    e = compute(x.shape, exp, "qsoftmax_exp", tag=MATERIALIZED)
    total = stage_along(x, axis, "qsoftmax_sum", lambda i, r: rsum(e[i], r), tag=IN_ORDER)
    factor, zero = E.const(float(attrs["factor"]), WIDE), E.const(int(attrs["zero"]), WIDE)
    lo, hi = INT_RANGES[outs[0].dtype]

    def body(*i: E.Var) -> E.Expr:
        y = e[i].astype(WIDE) * factor / total[row_of(i, axis)].astype(WIDE)
        y = E.call("round", y) + zero
        return E.minimum(E.maximum(y, E.const(lo, WIDE)), E.const(hi, WIDE)).astype(outs[0].dtype)

    return compute(x.shape, body, "quantized_softmax")


@quantized_softmax.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return 3 * outs[0].size  # sum, product and quotient per element

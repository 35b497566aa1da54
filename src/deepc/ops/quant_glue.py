"""The int8 ops between integer kernels: `lookup` (an int8/uint8 value through a 256-entry
table) and `quantized_add` (two int8/uint8 values added at their scales, requantized)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType, np_dtype
from deepc.ops.common import broadcast_index, broadcast_shape
from deepc.ops.quant import COMPUTE, INT_RANGES, saturated_round
from deepc.ops.registry import FusionKind, Op

BYTES = ("int8", "uint8")

# -- lookup ---------------------------------------------------------------------------------
lookup = Op("lookup", FusionKind.BROADCAST,
            doc="y = table[x - min(x's dtype)]: each int8/uint8 element's entry of a 256-entry "
                "table (of any dtype), a function of one quantized value tabulated at compile "
                "time")


@lookup.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, table = ins[0], ins[1]
    assert x is not None and table is not None
    if x.dtype not in BYTES or table.shape != (256,):
        raise ValueError(f"lookup takes an int8/uint8 value and a 256-entry table, got {x} "
                         f"and {table}")
    return TensorType(x.shape, table.dtype)


@lookup.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, table = ins[0], ins[1]
    assert x is not None and table is not None
    return table[x.astype(np.int32) - INT_RANGES[str(x.dtype)][0]]


@lookup.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, table = ins[0], ins[1]
    lo = INT_RANGES[x.dtype][0]

    def body(*o: E.Var) -> E.Expr:
        i = x[o].astype("int64")
        return table[(i - lo if lo else i,)]

    return compute(outs[0].shape, body, "lookup")


# -- quantized_add --------------------------------------------------------------------------
quantized_add = Op(
    "quantized_add", FusionKind.BROADCAST,
    doc="onnxruntime's QLinearAdd arithmetic (its AVX2 kernel): t = fma(b, ratio_b, fixed), "
        "y = saturate(round_half_even(fma(a, ratio_a, t))) in attrs['to'], each fma one "
        "float32 rounding, where ratio_a = sa / sy, ratio_b = sb / sy and fixed = "
        "zy - fma(za, ratio_a, ratio_b * zb), all float32; a and b broadcast")
# An fma's exact a * ratio + c: a byte times a float32 has at most 32 significant bits and
# the sum stays within float64's 53 at these magnitudes, so float64 then float32 rounds once.
WIDE = "float64"


def quantized_add_params(sa: float, za: int, sb: float, zb: int, sy: float, zy: int
                         ) -> tuple[np.float32, np.float32, np.float32]:
    """(ratio_a, ratio_b, fixed) as onnxruntime forms them in float32. Its compiler contracts
    ratio_a * za + ratio_b * zb into fma(za, ratio_a, ratio_b * zb): the plain two roundings
    put 1 of 65536 byte pairs one unit off at some scales (the encoder's residual adds). A
    byte times a float32 plus a float32 is exact in float64 at these magnitudes."""
    f = np.float32
    ra, rb = f(sa) / f(sy), f(sb) / f(sy)
    fma = np.float64(za) * np.float64(ra) + np.float64(rb * f(zb))
    return ra, rb, f(zy) - f(fma)


@quantized_add.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    to = str(attrs["to"])
    if a.dtype not in BYTES or b.dtype not in BYTES or to not in BYTES:
        raise ValueError(f"quantized_add adds two int8/uint8 values into int8/uint8, got "
                         f"{a}, {b} -> {to}")
    return TensorType(broadcast_shape(a.shape, b.shape), to)


def _params(attrs: Attrs) -> tuple[np.float32, np.float32, np.float32]:
    return (np.float32(attrs["ratio_a"]), np.float32(attrs["ratio_b"]),
            np.float32(attrs["fixed"]))


@quantized_add.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    ra, rb, fixed = (np.float64(v) for v in _params(attrs))
    to = str(attrs["to"])
    t = (b.astype(np.float64) * rb + fixed).astype(np.float32)
    y = (a.astype(np.float64) * ra + t.astype(np.float64)).astype(np.float32)
    return np.clip(np.rint(y), *INT_RANGES[to]).astype(np_dtype(to))


@quantized_add.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    a, b = ins[0], ins[1]
    ra, rb, fixed = (E.const(float(v), WIDE) for v in _params(attrs))
    lo, hi = INT_RANGES[outs[0].dtype]

    def body(*o: E.Var) -> E.Expr:
        t = (b[broadcast_index(o, b.shape)].astype(WIDE) * rb + fixed).astype(COMPUTE)
        y = (a[broadcast_index(o, a.shape)].astype(WIDE) * ra + t.astype(WIDE)).astype(COMPUTE)
        return saturated_round(y, lo, hi).astype(outs[0].dtype)

    return compute(outs[0].shape, body, "quantized_add")

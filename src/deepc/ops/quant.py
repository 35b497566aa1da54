"""Linear (de)quantisation: `quantize_linear` (float -> int) and `dequantize_linear` (int -> float).

Both scale by a `scale` and shift by a `zero_point` that are per tensor (scalars), per axis
(a vector along `axis`) or per block (x's shape with `axis` divided into blocks of
`block_size`): element o reads the parameters at o with o[axis] // block_size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ml_dtypes
import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import MATERIALIZED, Tensor, compute
from deepc.ir.types import NARROW_FLOATS, NARROW_INTS, TensorType, np_dtype
from deepc.ops.registry import FusionKind, Op

INT_RANGES = {d: (int(ml_dtypes.iinfo(d).min), int(ml_dtypes.iinfo(d).max))
              for d in ("int8", "uint8", "int16", "uint16", "int32", *NARROW_INTS)}
# float targets: scaled values are not rounded to integers, only clamped to the format's range
FLOAT_RANGES = {d: (-float(ml_dtypes.finfo(d).max), float(ml_dtypes.finfo(d).max))
                for d in NARROW_FLOATS if d not in ("bfloat16", "float8_e8m0fnu")}
COMPUTE = "float32"  # the arithmetic dtype (float16 scales are widened, as onnx's reference does)
# integers whose range float32 holds exactly, so clamping in float32 to range - zero point is
# exact and the rounded value fits int32
EXACT_RANGES = ("int8", "uint8", "int16", "uint16")


def saturated_round(y: E.Expr, lo: int, hi: int, zero: E.Expr | int = 0) -> E.Expr:
    """int32 saturate(round_half_even(y) + zero) for an integer zero point and a float32 y:
    clamped to [lo - zero, hi - zero] while still float (rounding commutes with clamping to
    integers), rounded by the float -> int32 conversion of round (one cvtps2dq on x86:
    backends/llvm turns int32(round(v)) into llvm.lrint where the target's convert rounds to
    nearest even), the zero point added as an integer. Where it is a constant 0 none is."""
    if isinstance(zero, int):
        low, high = E.const(lo - zero, COMPUTE), E.const(hi - zero, COMPUTE)
        z = E.const(zero, "int32")
    else:
        zf = zero.astype(COMPUTE)
        low, high = E.const(lo, COMPUTE) - zf, E.const(hi, COMPUTE) - zf
        z = zero.astype("int32")
    # selects, not maximum/minimum: those keep NaN (compare, unordered test, blend each);
    # these are one maxps and one minps (NaN has no integer to become anyway)
    above = E.select(y > low, y, low)
    r = E.call("round", E.select(above < high, above, high)).astype("int32")
    return r if isinstance(zero, int) and zero == 0 else r + z


def check_params(x: TensorType, scale: TensorType, zero: TensorType | None, attrs: Attrs) -> None:
    axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
    if zero is not None and zero.shape != scale.shape and not zero.size == scale.size == 1:
        raise ValueError(f"zero point {zero} and scale {scale} differ in shape")
    if block:
        want = tuple(-(-n // block) if k == axis else n for k, n in enumerate(x.shape))
        if scale.shape != want:
            raise ValueError(f"blocked scale {scale} must have shape {want} for x {x}")
    elif scale.rank == 1 and scale.size != 1 and scale.shape != (x.shape[axis],):
        raise ValueError(f"per-axis scale {scale} must have {x.shape[axis]} entries")
    elif scale.rank > 1:
        raise ValueError(f"scale {scale} must be a scalar or a vector unless block_size is set")


def param_index(o: Sequence[Any], shape: Sequence[int], attrs: Attrs) -> tuple[Any, ...]:
    """The index into a scale or zero point of `shape` for output element o."""
    axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
    if not shape:
        return ()
    if block:
        return tuple(o[k] // block if k == axis else o[k] for k in range(len(o)))
    return (0,) if shape[0] == 1 else (o[axis],)


def expanded(p: np.ndarray, x: np.ndarray, attrs: Attrs) -> np.ndarray:
    """A scale or zero point broadcast to x's shape."""
    axis, block = int(attrs.get("axis", 1)), int(attrs.get("block_size", 0))
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    if block:
        return np.take(np.repeat(p, block, axis=axis), np.arange(x.shape[axis]), axis=axis)
    return p.reshape([-1 if k == axis else 1 for k in range(x.ndim)])


def _types(ins: Sequence[TensorType | None], attrs: Attrs) -> tuple[TensorType, TensorType,
                                                                    TensorType | None]:
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    check_params(x, scale, zero, attrs)
    return x, scale, zero


def _params(ins: Sequence[Any], o: Sequence[Any], attrs: Attrs) -> tuple[E.Expr, E.Expr | None]:
    scale = ins[1]
    zero = ins[2] if len(ins) > 2 else None
    s = scale[param_index(o, scale.shape, attrs)].astype(COMPUTE)
    z = None if zero is None else zero[param_index(o, zero.shape, attrs)].astype(COMPUTE)
    return s, z


# -- quantize_linear ------------------------------------------------------------------------
quantize_linear = Op(
    "quantize_linear", FusionKind.INJECTIVE,
    doc="y = saturate(round_half_even(x / scale) + zero_point) in attrs['to'] (an integer "
        "dtype); scale and zero point per tensor, per `axis` or per `block_size` block")


@quantize_linear.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, _, _ = _types(ins, attrs)
    to = str(attrs["to"])
    if to not in INT_RANGES and to not in FLOAT_RANGES:
        raise ValueError(f"quantizing to {to} is not supported (only ints, float8 and float4)")
    return TensorType(x.shape, to)


@quantize_linear.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    to = str(attrs["to"])
    lo, hi = INT_RANGES.get(to) or FLOAT_RANGES[to]
    y = x.astype(COMPUTE) / expanded(scale, x, attrs).astype(COMPUTE)
    y = y if to in FLOAT_RANGES else np.rint(y)
    if zero is not None:
        y = y + expanded(zero, x, attrs).astype(COMPUTE)
    return np.clip(y, lo, hi).astype(np_dtype(str(attrs["to"])))


@quantize_linear.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, to = ins[0], outs[0].dtype
    lo, hi = INT_RANGES.get(to) or FLOAT_RANGES[to]

    def body(*o: E.Var) -> E.Expr:
        s, z = _params(ins, o, attrs)
        y = x[o].astype(COMPUTE) / s
        if to in EXACT_RANGES:
            zero = 0 if len(ins) < 3 else ins[2][param_index(o, ins[2].shape, attrs)]
            return saturated_round(y, lo, hi, zero).astype(to)
        y = y if to in FLOAT_RANGES else E.call("round", y)
        if z is not None:
            y = y + z
        return E.minimum(E.maximum(y, E.const(lo, COMPUTE)), E.const(hi, COMPUTE)).astype(to)

    return compute(outs[0].shape, body, "quantize_linear")


# -- dequantize_linear ----------------------------------------------------------------------
dequantize_linear = Op(
    "dequantize_linear", FusionKind.INJECTIVE,
    doc="y = (x - zero_point) * scale in attrs['to'] (a float dtype, the scale's by default); "
        "scale and zero point per tensor, per `axis` or per `block_size` block")


@dequantize_linear.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, scale, _ = _types(ins, attrs)
    return TensorType(x.shape, str(attrs.get("to") or scale.dtype))


@dequantize_linear.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    x, scale = ins[0], ins[1]
    zero = ins[2] if len(ins) > 2 else None
    assert x is not None and scale is not None
    y = x.astype(COMPUTE)
    if zero is not None:
        y = y - expanded(zero, x, attrs).astype(COMPUTE)
    y = y * expanded(scale, x, attrs).astype(COMPUTE)
    return y.astype(np_dtype(str(attrs.get("to") or scale.dtype)))


@dequantize_linear.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]

    def body(*o: E.Var) -> E.Expr:
        s, z = _params(ins, o, attrs)
        y = x[o].astype(COMPUTE)
        return ((y if z is None else y - z) * s).astype(outs[0].dtype)

    return compute(outs[0].shape, body, "dequantize_linear", tag=MATERIALIZED)


# -- requantize -----------------------------------------------------------------------------
requantize = Op(
    "requantize", FusionKind.BROADCAST,
    doc="the epilogue of an integer conv/matmul: y = saturate(round_half_even(float32(acc + "
        "bias) * multiplier) + zero_point) in attrs['to'], clamped to attrs['min'] and "
        "attrs['max'] where given; acc int32, multiplier float32 and optional int32 bias per "
        "tensor or per `axis`, zero point a scalar")


def _requant_bounds(attrs: Attrs) -> tuple[int, int]:
    """The type's range narrowed to attrs min/max: a relu or clip before the quantize, whose
    bounds quantize to these (quantize is monotone, so it commutes with clamping)."""
    lo, hi = INT_RANGES[str(attrs["to"])]
    given = attrs.get("min"), attrs.get("max")
    return (lo if given[0] is None else max(lo, int(given[0])),  # type: ignore[arg-type]
            hi if given[1] is None else min(hi, int(given[1])))  # type: ignore[arg-type]


@requantize.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    acc, mult, zero = ins[0], ins[1], ins[2]
    assert acc is not None and mult is not None and zero is not None
    if acc.dtype != "int32" or mult.dtype != COMPUTE or zero.size != 1:
        raise ValueError(f"requantize takes int32 acc, float32 multiplier and a scalar zero "
                         f"point, got {acc}, {mult}, {zero}")
    check_params(acc, mult, None, attrs)
    bias = ins[3] if len(ins) > 3 else None
    if bias is not None and (bias.dtype != "int32" or bias.shape != mult.shape):
        raise ValueError(f"bias {bias} must be int32 shaped like the multiplier {mult}")
    to = str(attrs["to"])
    if to not in ("int8", "uint8") or zero.dtype != to:
        raise ValueError(f"requantize makes int8 or uint8 with a zero point of that type, got "
                         f"{to} and {zero}")
    return TensorType(acc.shape, to)


@requantize.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    acc, mult, zero = ins[0], ins[1], ins[2]
    assert acc is not None and mult is not None and zero is not None
    to = str(attrs["to"])
    lo, hi = _requant_bounds(attrs)
    if len(ins) > 3 and ins[3] is not None:
        acc = acc + expanded(ins[3], acc, attrs).astype(np.int32)
    y = np.rint(acc.astype(np.float32) * expanded(mult, acc, attrs).astype(np.float32))
    return np.clip(y + np.float32(zero.reshape(-1)[0]), lo, hi).astype(np_dtype(to))


@requantize.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    acc, mult, zero = ins[0], ins[1], ins[2]
    to = outs[0].dtype
    lo, hi = _requant_bounds(attrs)

    def body(*o: E.Var) -> E.Expr:
        m = mult[param_index(o, mult.shape, attrs)]
        a = acc[o] if len(ins) < 4 else acc[o] + ins[3][param_index(o, mult.shape, attrs)]
        return saturated_round(a.astype(COMPUTE) * m, lo, hi, zero[(0,) * zero.rank]).astype(to)

    return compute(outs[0].shape, body, "requantize")

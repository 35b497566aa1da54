"""Narrow formats (bfloat16, float8, float4, int4, int2) through the LLVM backend, bit for bit
against ml_dtypes and onnx's saturating cast."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deepc.backend import DeepcBackend
from deepc.ir.types import NARROW_FLOATS, NARROW_INTS


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, tuple[int, ...]]],
           outputs: dict[str, tuple[int, tuple[int, ...]]], opset: int = 25) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "narrow",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _ties(dtype: str) -> np.ndarray:
    """Values halfway between neighbours of `dtype` (where rounding to even decides)."""
    raw = np.arange(1 << 16, dtype=np.uint16)[::97] if dtype == "bfloat16" else np.arange(256)
    values = raw.astype(np.uint16 if dtype == "bfloat16" else np.uint8).view(dtype)
    with np.errstate(invalid="ignore"):  # the NaN codes
        grid = np.unique(values.astype(np.float64))
    grid = grid[np.isfinite(grid)]
    return ((grid[:-1] + grid[1:]) / 2).astype(np.float32)


def _samples(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    spread = [rng.standard_normal(400).astype(np.float32) * s
              for s in (1e-7, 1e-3, 0.1, 1.0, 10.0, 300.0, 1e4, 1e6)]
    edges = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 448, 460, 464, 465, 57344, 61440,
                      2.0**-9 * 1.5, 2.0**-10, 0.25, 0.75, 5.0, 7.0], np.float32)
    return np.concatenate([*spread, edges, -edges, _ties(dtype)])


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    raw = np.uint16 if got.dtype.itemsize == 2 else np.uint8
    nan = np.isnan(got.astype(np.float32)) & np.isnan(want.astype(np.float32))
    return bool(np.all((got.view(raw) == want.view(raw)) | nan))


@pytest.mark.parametrize("dtype", [d for d in NARROW_FLOATS if d != "float8_e8m0fnu"])
def test_float_formats_round_saturate_and_decode_like_ml_dtypes(dtype: str) -> None:
    code = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = _samples(dtype)
    with np.errstate(all="ignore"):
        plain = x.astype(dtype)
    saturating = (onnx.numpy_helper.saturate_cast(x, np.dtype(dtype))
                  if dtype.startswith("float8") else plain)
    n = (x.size,)
    model = _model(
        [helper.make_node("Cast", ["x"], ["sat"], to=code, saturate=1),
         helper.make_node("Cast", ["x"], ["nosat"], to=code, saturate=0),
         helper.make_node("Cast", ["c"], ["back"], to=TensorProto.FLOAT)],
        {"x": (TensorProto.FLOAT, n), "c": (code, n)},
        {"sat": (code, n), "nosat": (code, n), "back": (TensorProto.FLOAT, n)})
    sat, nosat, back = DeepcBackend.prepare(model).run([x, plain])
    assert sat.dtype == np.dtype(dtype)
    assert _same_bits(sat, saturating)
    assert _same_bits(nosat, plain)
    np.testing.assert_array_equal(back, plain.astype(np.float32))


def test_e8m0_rounds_up_to_a_power_of_two_like_onnx() -> None:
    x = _samples("float8_e4m3fn")
    code = TensorProto.FLOAT8E8M0
    want = onnx.numpy_helper.to_float8e8m0(x, saturate=True, round_mode="up")
    n = (x.size,)
    model = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=code),
         helper.make_node("Cast", ["c"], ["back"], to=TensorProto.FLOAT)],
        {"x": (TensorProto.FLOAT, n), "c": (code, n)},
        {"y": (code, n), "back": (TensorProto.FLOAT, n)}, opset=25)
    y, back = DeepcBackend.prepare(model).run([x, want])
    np.testing.assert_array_equal(y.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(back, want.astype(np.float32))


@pytest.mark.parametrize("dtype", NARROW_INTS)
def test_int_formats_follow_ml_dtypes(dtype: str) -> None:
    """Out-of-range values become 0 (as ml_dtypes has it); stored values widen exactly."""
    code = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = np.arange(-20, 20, 0.25, dtype=np.float32)
    with np.errstate(all="ignore"):
        want = x.astype(dtype)
    n = (x.size,)
    model = _model(
        [helper.make_node("Cast", ["x"], ["y"], to=code),
         helper.make_node("Cast", ["c"], ["wide"], to=TensorProto.INT32)],
        {"x": (TensorProto.FLOAT, n), "c": (code, n)},
        {"y": (code, n), "wide": (TensorProto.INT32, n)})
    y, wide = DeepcBackend.prepare(model).run([x, want])
    np.testing.assert_array_equal(y.view(np.uint8), want.view(np.uint8))
    np.testing.assert_array_equal(wide, want.astype(np.int32))


def test_quantize_to_int4_rounds_and_clamps() -> None:
    x = np.array([0.0, 2.5, 3.5, -7.0, 40.0, -40.0, 1.2, -1.6], np.float32)
    model = _model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
        {"x": (TensorProto.FLOAT, (8,)), "s": (TensorProto.FLOAT, ()),
         "z": (TensorProto.INT4, ())},
        {"y": (TensorProto.INT4, (8,))})
    y = DeepcBackend.prepare(model).run([x, np.float32(0.5), np.array(1, ml_dtypes.int4)])[0]
    want = np.clip(np.rint(x / 0.5) + 1, -8, 7).astype(ml_dtypes.int4)
    np.testing.assert_array_equal(y.astype(np.int8), want.astype(np.int8))


def test_bitcast_reads_the_bits_as_another_type() -> None:
    x = np.array([1.0, -2.5, np.inf, 0.0], np.float32)
    model = _model([helper.make_node("BitCast", ["x"], ["y"], to=TensorProto.INT32)],
                   {"x": (TensorProto.FLOAT, (4,))}, {"y": (TensorProto.INT32, (4,))}, opset=26)
    np.testing.assert_array_equal(DeepcBackend.prepare(model).run([x])[0], x.view(np.int32))

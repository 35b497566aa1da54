"""quantized_softmax through the reference, the compute definition and the LLVM backend,
against onnxruntime's own QLinearSoftmax kernel, on rows where its arithmetic's details (the
in-order sum, the float64 quotient) decide a byte."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.ops.quant_softmax import output_factor, softmax_table
from tests.helpers import run_ort
from tests.ops.test_quant_glue import _graph, _runner

ROWS, N = 8000, 128
# about the encoder's last attention layer's scales: its logits' and its probabilities'; for
# int8 (zero point -128) a probability of one stays below 128, where onnxruntime's int8
# kernel would wrap
X_SCALE = 0.08
Y_SCALES = {"uint8": 1 / 3600.5, "int8": 1 / 255.5}


def _rows(dtype: str, seed: int = 1) -> np.ndarray:
    """Attention-like rows: bytes spread around a per-row level, the maximum well inside."""
    rng = np.random.default_rng(seed)
    lo = -128 if dtype == "int8" else 0
    x = rng.normal(150, 25, (ROWS, N)) + rng.integers(-40, 40, (ROWS, 1)) + lo
    return np.clip(np.rint(x), lo, lo + 255).astype(dtype)


def _qlinear_softmax(x: np.ndarray, y_scale: float, zero: int) -> np.ndarray:
    """onnxruntime's com.microsoft QLinearSoftmax over the last axis."""
    t = onnx.TensorProto.UINT8 if x.dtype == np.uint8 else onnx.TensorProto.INT8
    inits = [numpy_helper.from_array(np.float32(X_SCALE), "xs"),
             numpy_helper.from_array(np.array(0, x.dtype), "xz"),
             numpy_helper.from_array(np.float32(y_scale), "ys"),
             numpy_helper.from_array(np.array(zero, x.dtype), "yz")]
    node = helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"],
                            domain="com.microsoft", axis=-1, opset=13)
    graph = helper.make_graph([node], "qsoftmax", [helper.make_tensor_value_info("x", t, x.shape)],
                              [helper.make_tensor_value_info("y", t, x.shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("com.microsoft", 1)])
    return run_ort(model, {"x": x})[0]


def _sensitive(x: np.ndarray) -> tuple[int, int]:
    """Bytes a pairwise sum, and bytes a float32 quotient, would put elsewhere (the test
    means something only where both occur)."""
    table = softmax_table(X_SCALE, N)
    xi = x.astype(np.int64)
    e = table[255 - xi.max(axis=-1, keepdims=True) + xi]
    factor = np.float32(output_factor(Y_SCALES["uint8"]))
    total = np.add.accumulate(e, axis=-1, dtype=np.float32)[:, -1:]
    good = np.rint(e.astype(np.float64) * float(factor) / total)
    pairwise = np.rint(e.astype(np.float64) * float(factor) / e.sum(-1, np.float32, keepdims=True))
    narrow = np.rint((e * factor) / total)
    return int((good != pairwise).sum()), int((good != narrow).sum())


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("way", ["reference", "compute", "compiled"])
def test_quantized_softmax_is_onnxruntime_s_qlinear_softmax(way: str, dtype: str) -> None:
    x = _rows(dtype)
    zero = -128 if dtype == "int8" else 0
    if dtype == "uint8":
        assert min(_sensitive(x)) > 0
    graph = _graph("quantized_softmax", {"x": x}, [softmax_table(X_SCALE, N)], axis=1,
                   factor=output_factor(Y_SCALES[dtype]), zero=zero, to=dtype)
    got = _runner(way)(graph, {"x": x})[graph.outputs[0]]
    np.testing.assert_array_equal(got, _qlinear_softmax(x, Y_SCALES[dtype], zero))

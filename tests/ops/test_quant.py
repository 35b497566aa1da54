import numpy as np
import pytest

rng = np.random.default_rng(0)
X = (rng.standard_normal((2, 3, 4)) * 50).astype(np.float32)


@pytest.mark.parametrize(("scale", "zero", "attrs"), [
    (np.float32(0.5), np.uint8(128), {}),
    (np.float32(0.7), np.int8(-3), {}),
    (np.array([0.5, 1.0, 2.0], np.float32), np.array([1, 2, 3], np.int8), {"axis": 1}),
    (np.abs(rng.standard_normal((2, 3, 2))).astype(np.float32) + 0.1,
     np.zeros((2, 3, 2), np.int16), {"axis": 2, "block_size": 2}),
])
def test_quantize_linear(check, scale, zero, attrs):
    check("QuantizeLinear", {"x": X, "s": np.asarray(scale), "z": np.asarray(zero)}, opset=21,
          initializers=["s", "z"], **attrs)


@pytest.mark.parametrize(("dtype", "attrs"), [(np.uint8, {}), (np.int8, {"axis": 0})])
def test_dequantize_linear(check, dtype, attrs):
    x = rng.integers(0, 100, (3, 4)).astype(dtype)
    per_axis = "axis" in attrs
    scale = np.array([0.5, 0.25, 2.0], np.float32) if per_axis else np.array(0.1, np.float32)
    zero = np.array([1, 2, 3], dtype) if per_axis else np.array(7, dtype)
    check("DequantizeLinear", {"x": x, "s": scale, "z": zero}, opset=21, **attrs)


def test_matmul_integer(check):
    a = rng.integers(0, 255, (3, 5)).astype(np.uint8)
    w = rng.integers(-128, 127, (5, 2)).astype(np.int8)
    check("MatMulInteger", {"a": a, "w": w, "za": np.array(3, np.uint8),
                            "zw": np.array([4, -5], np.int8)}, initializers=["za", "zw"])


def test_qlinear_matmul(check):
    a = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    w = rng.integers(0, 255, (4, 5)).astype(np.uint8)
    f, u = np.float32, np.uint8
    check("QLinearMatMul", {"a": a, "sa": f(0.02), "za": u(100), "w": w, "sw": f(0.01),
                            "zw": u(120), "sy": f(0.05), "zy": u(110)},
          initializers=["sa", "za", "sw", "zw", "sy", "zy"])

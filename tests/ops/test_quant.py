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
                            "zw": np.array([4, -5], np.int8)}, initializers=["w", "za", "zw"])


def test_qlinear_matmul(check):
    a = rng.integers(0, 255, (2, 3, 4)).astype(np.uint8)
    w = rng.integers(0, 255, (4, 5)).astype(np.uint8)
    f, u = np.float32, np.uint8
    check("QLinearMatMul", {"a": a, "sa": f(0.02), "za": u(100), "w": w, "sw": f(0.01),
                            "zw": u(120), "sy": f(0.05), "zy": u(110)},
          initializers=["sa", "za", "sw", "zw", "sy", "zy"])


def _requantize_graph(acc_shape: tuple[int, ...], mult: np.ndarray, zero: np.ndarray,
                      **attrs: object):
    from deepc.frontends.builder import GraphBuilder
    from deepc.ir.types import TensorType

    b = GraphBuilder("requantize")
    acc = b.add_input("acc", TensorType(acc_shape, "int32"))
    y = b.emit("requantize", [acc, b.add_constant(mult), b.add_constant(zero)],
               {"to": zero.dtype.name, **attrs}, fold=False)[0]
    b.outputs = [y]
    return b.build()


@pytest.mark.parametrize("relu", [0, 1])
@pytest.mark.parametrize("way", ["reference", "compute", "compiled"])
def test_requantize(way, relu):
    """round-half-even of float32(acc) * multiplier (ties included), + zero point,
    saturated, floored at the zero point (a relu's clamp); per channel along axis 1."""
    from deepc.compiler.jit_graph import run_graph_jit
    from deepc.lowering.te_graph import run_graph_te
    from deepc.ops.interpreter import run_graph

    mult = np.array([0.5, 0.25, 1.5], np.float32)  # exact ties: acc * 0.5 = k + 0.5
    zero = np.array(10, np.uint8)
    acc = rng.integers(-600, 600, (2, 3, 7)).astype(np.int32)
    acc[0, 0, :5] = [1, 3, 5, -1, -21]  # x.5 after * 0.5: round to even
    graph = _requantize_graph(acc.shape, mult, zero, axis=1, **({"min": 10} if relu else {}))
    run = {"reference": run_graph, "compute": run_graph_te, "compiled": run_graph_jit}[way]
    got = run(graph, {"acc": acc})[graph.outputs[0]]
    exact = np.rint(acc.astype(np.float64) * mult.reshape(1, 3, 1).astype(np.float64)) + 10
    want = np.clip(exact, 10 if relu else 0, 255).astype(np.uint8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert list(got[0, 0, :5]) == [max(10 if relu else 0, v) for v in (10, 12, 12, 10, 0)]

import numpy as np
import pytest

from tests.helpers import node_model, run_deepc

rng = np.random.default_rng(0)
X2 = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
X1 = rng.standard_normal((1, 2, 11)).astype(np.float32)
X3 = rng.standard_normal((1, 2, 5, 6, 7)).astype(np.float32)


WINDOWS = [
    (X2, {"kernel_shape": [3, 3]}),
    (X2, {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}),
    (X2, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (X2, {"kernel_shape": [2, 2], "strides": [2, 3], "pads": [1, 1, 0, 1], "ceil_mode": 1}),
    (X2, {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    (X2, {"kernel_shape": [4, 3], "strides": [3, 2], "auto_pad": "SAME_LOWER"}),
    (X2, {"kernel_shape": [3, 3], "strides": [2, 1], "auto_pad": "VALID"}),
    (X1, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    (X3, {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [0, 1, 1, 1, 1, 0]}),
]
DILATED = [
    (X2, {"kernel_shape": [2, 2], "dilations": [2, 2]}),
    (X2, {"kernel_shape": [3, 2], "dilations": [2, 3], "strides": [2, 1], "pads": [1, 1, 2, 0]}),
    (X2, {"kernel_shape": [2, 2], "dilations": [2, 1], "strides": [2, 2], "ceil_mode": 1}),
]


@pytest.mark.parametrize(("x", "attrs"), WINDOWS + DILATED)
def test_max_pool(check, x, attrs):
    check("MaxPool", {"x": x}, **attrs)


@pytest.mark.parametrize("opset", [7, 8, 10, 11, 12, 22])
def test_max_pool_opsets(check, opset):
    check("MaxPool", {"x": X2}, opset=opset, kernel_shape=[2, 2], strides=[2, 2],
          pads=[1, 1, 1, 1])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_int(check, dtype):
    x = rng.integers(0, 100, (1, 2, 6, 6)).astype(dtype)
    check("MaxPool", {"x": x}, kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])


@pytest.mark.parametrize(("attrs", "x"), [
    ({"kernel_shape": [2, 2]}, X2),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, X2),
    ({"kernel_shape": [2, 3], "storage_order": 1}, X2),
    ({"kernel_shape": [2, 2], "pads": [1, 0, 0, 1]}, np.round(X2)),  # ties: the first tap
])
def test_max_pool_indices(check, attrs, x):
    check("MaxPool", {"x": x}, n_outputs=2, opset=12, **attrs)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(("x", "attrs"), WINDOWS)
def test_avg_pool(check, x, attrs, count_include_pad):
    check("AveragePool", {"x": x}, count_include_pad=count_include_pad, **attrs)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize(("x", "attrs"), DILATED)
def test_avg_pool_dilated(check, x, attrs, count_include_pad):
    check("AveragePool", {"x": x}, opset=19, count_include_pad=count_include_pad, **attrs)


@pytest.mark.parametrize("opset", [7, 10, 11, 19, 22])
def test_avg_pool_opsets(check, opset):
    check("AveragePool", {"x": X2}, opset=opset, kernel_shape=[3, 3], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize(("x", "attrs"), WINDOWS[:2] + WINDOWS[4:8])
def test_lp_pool(check, x, attrs, p):
    check("LpPool", {"x": x}, p=p, rtol=1e-4, atol=1e-5, **attrs)


@pytest.mark.parametrize(("x", "attrs"), DILATED + WINDOWS[2:4])
def test_lp_pool_opset18(check, x, attrs):
    check("LpPool", {"x": x}, opset=18, rtol=1e-4, atol=1e-5, **attrs)


@pytest.mark.parametrize("x", [X1, X2, X3])
@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool(check, op, x):
    check(op, {"x": x})


@pytest.mark.parametrize("p", [1, 2, 3])
def test_global_lp_pool(check, p):
    check("GlobalLpPool", {"x": X2}, p=p, rtol=1e-4)


def test_pool_float16(check):
    x = X2.astype(np.float16)
    check("AveragePool", {"x": x}, kernel_shape=[3, 3], rtol=1e-3, atol=1e-3)
    check("MaxPool", {"x": x}, kernel_shape=[3, 3], strides=[2, 2])
    check("GlobalAveragePool", {"x": x}, rtol=1e-3, atol=1e-3)
    check("AveragePool", {"x": x}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
          rtol=1e-3, atol=1e-3)
    check("LpPool", {"x": x}, kernel_shape=[2, 2], p=3, rtol=1e-3, atol=1e-3)


UNPOOL_X = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 2, 2)
# one position in each 2x2 window of a 4x4 plane, per channel
UNPOOL_I = np.array([[[[5, 2], [8, 15]], [[16, 19], [28, 30]]]], np.int64)


def test_max_unpool(check_loops):
    check_loops("MaxUnpool", {"x": UNPOOL_X, "i": UNPOOL_I}, opset=11, kernel_shape=[2, 2],
                strides=[2, 2])


def test_max_unpool_to_a_larger_output_shape_pads_the_end():
    """onnxruntime lays the indices out in the larger shape; onnx's reference (the spec and
    the node test) scatters into the inferred shape, then pads."""
    from onnx.reference import ReferenceEvaluator

    from tests.helpers import run_compute

    feeds = {"x": UNPOOL_X, "i": UNPOOL_I, "shape": np.array([1, 2, 5, 5], np.int64)}
    model = node_model("MaxUnpool", feeds, opset=11, initializers=["shape"],
                       kernel_shape=[2, 2], strides=[2, 2])
    feeds.pop("shape")
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_array_equal(run_deepc(model, feeds)[0], want)
    np.testing.assert_array_equal(run_compute(model, feeds, compiled=True)[0], want)

import numpy as np
import pytest

from deepc.errors import ConversionError, ShapeError
from tests.helpers import check_op, node_model, run_deepc, run_ort

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 6)).astype(np.float32)


def check_topk(x: np.ndarray, k: int, opset: int = 11, **attrs: object) -> list[np.ndarray]:
    if opset < 10:
        return check_op("TopK", {"x": x}, n_outputs=2, opset=opset, k=k, **attrs)
    return check_op("TopK", {"x": x, "k": np.array([k], np.int64)}, n_outputs=2, opset=opset,
                    initializers=["k"], **attrs)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
@pytest.mark.parametrize("largest", [0, 1])
def test_topk(axis, largest):
    check_topk(X, 2, axis=axis, largest=largest)


@pytest.mark.parametrize("opset", [7, 10, 11, 24])
def test_topk_opsets(opset):
    values, indices = check_topk(X, 3, opset=opset)
    assert indices.dtype == np.int64 and values.shape == (3, 4, 3)


@pytest.mark.parametrize("k", [0, 1, 6])
def test_topk_k_extremes(k):
    check_topk(X, k)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64])
def test_topk_ties_go_to_lower_index(largest, dtype):
    x = np.array([[3, 1, 3, 2, 1, 3, 2], [5, 5, 5, 5, 5, 5, 5]], dtype)
    check_topk(x, 5, largest=largest)


def test_topk_unsorted_holds_the_same_set():
    model = node_model("TopK", {"x": X, "k": np.array([3], np.int64)}, n_outputs=2, opset=11,
                       initializers=["k"], sorted=0)
    expected, actual = run_ort(model, {"x": X}), run_deepc(model, {"x": X})
    for e, a in zip(expected, actual):
        assert e.shape == a.shape and e.dtype == a.dtype
        np.testing.assert_array_equal(np.sort(e, axis=-1), np.sort(a, axis=-1))


def test_topk_runtime_k_is_rejected():
    model = node_model("TopK", {"x": X, "k": np.array([3], np.int64)}, n_outputs=2, opset=11)
    with pytest.raises(ConversionError, match="TopK k"):
        run_deepc(model, {"x": X, "k": np.array([3], np.int64)})


def test_topk_k_too_large_is_a_shape_error():
    model = node_model("TopK", {"x": X, "k": np.array([7], np.int64)}, n_outputs=2, opset=11,
                       initializers=["k"])
    with pytest.raises(ShapeError, match="k=7"):
        run_deepc(model, {"x": X})

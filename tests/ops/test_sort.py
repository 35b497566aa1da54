import numpy as np
import pytest

import deepc
from deepc.compiler.jit_graph import run_graph_jit
from deepc.errors import ConversionError, ShapeError
from deepc.frontends.onnx import convert
from deepc.runtime.jit_model import JitModel
from tests.helpers import check_compiled, check_op, node_model, run_deepc, run_ort

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 6)).astype(np.float32)


@pytest.fixture(params=[check_op, check_compiled], ids=["reference", "compiled"])
def check(request):
    """Each case runs through the numpy reference and the compiled loop nest (TopK is an
    extern stage, which the numpy evaluator of compute definitions cannot run)."""
    return request.param


def check_topk(check, x: np.ndarray, k: int, opset: int = 11,
               **attrs: object) -> list[np.ndarray]:
    if opset < 10:
        return check("TopK", {"x": x}, n_outputs=2, opset=opset, k=k, **attrs)
    return check("TopK", {"x": x, "k": np.array([k], np.int64)}, n_outputs=2, opset=opset,
                 initializers=["k"], **attrs)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
@pytest.mark.parametrize("largest", [0, 1])
def test_topk(check, axis, largest):
    check_topk(check, X, 2, axis=axis, largest=largest)


@pytest.mark.parametrize("opset", [7, 10, 11, 24])
def test_topk_opsets(check, opset):
    values, indices = check_topk(check, X, 3, opset=opset)
    assert indices.dtype == np.int64 and values.shape == (3, 4, 3)


@pytest.mark.parametrize("k", [0, 1, 6])
def test_topk_k_extremes(check, k):
    check_topk(check, X, k)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float64])
def test_topk_ties_go_to_lower_index(check, largest, dtype):
    x = np.array([[3, 1, 3, 2, 1, 3, 2], [5, 5, 5, 5, 5, 5, 5]], dtype)
    check_topk(check, x, 5, largest=largest)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1])
def test_topk_long_rows_with_ties(check, axis, largest):
    """Most elements fail the entry test; the ones that enter shift a full buffer."""
    x = rng.integers(-20, 20, (3, 200)).astype(np.float32)
    check_topk(check, x if axis == 1 else x.T.copy(), 17, axis=axis, largest=largest)


@pytest.mark.parametrize("largest", [0, 1])
def test_topk_nan_sorts_above_numbers(check, largest):
    nan = np.nan
    x = np.array([[1, nan, 3, nan, np.inf, -np.inf, 3], [nan, nan, nan, nan, nan, nan, nan],
                  [2, 0, nan, 2, 1, 0, 5]], np.float32)
    check_topk(check, x, 5, largest=largest)


def _run_compiled(model, feeds, scheduled=False):
    """Node by node through the JIT, or with `scheduled` through deepc.compile (default
    schedules included)."""
    graph = convert(model, {k: v.shape for k, v in feeds.items()})
    out = JitModel(deepc.compile(graph)).run(feeds) if scheduled else run_graph_jit(graph, feeds)
    return [out[name] for name in graph.outputs]


@pytest.mark.parametrize("run", [run_deepc, _run_compiled], ids=["reference", "compiled"])
def test_topk_unsorted_holds_the_same_set(run):
    model = node_model("TopK", {"x": X, "k": np.array([3], np.int64)}, n_outputs=2, opset=11,
                       initializers=["k"], sorted=0)
    expected, actual = run_ort(model, {"x": X}), run(model, {"x": X})
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


@pytest.mark.parametrize(("shape", "axis", "k"), [((9000, 8), 1, 3), ((8, 5000), 0, 4),
                                                  ((9000,), 0, 5)])
def test_topk_scheduled(shape, axis, k):
    """Shapes where default schedules spread loops over threads: rows may be, scans not."""
    x = rng.integers(-50, 50, shape).astype(np.float32)  # many ties
    model = node_model("TopK", {"x": x, "k": np.array([k], np.int64)}, n_outputs=2, opset=11,
                       initializers=["k"], axis=axis)
    for a, e in zip(_run_compiled(model, {"x": x}, scheduled=True), run_ort(model, {"x": x})):
        np.testing.assert_array_equal(a, e)

import numpy as np
import pytest

import deepc
from deepc.errors import ConversionError
from deepc.frontends.onnx import convert
from deepc.runtime.jit_model import JitModel
from tests.helpers import node_model, run_deepc, run_ort

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 5)).astype(np.float32)


# -- Gather -----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("opset", [7, 11, 13])
def test_gather_axes(check, axis, opset):
    n = X.shape[axis]
    idx = np.array([[0, n - 1], [1, 0], [n - 1, 1]], np.int64)
    if opset >= 11:  # negative indices are defined from opset 11
        idx[0, 0] = -1
    check("Gather", {"x": X, "i": idx}, opset=opset, axis=axis)


@pytest.mark.parametrize("idx", [np.int64(2), np.int64(-1), np.array([], np.int64)])
def test_gather_scalar_and_empty_indices(check, idx):
    out = check("Gather", {"x": X, "i": np.asarray(idx)}, axis=1)
    assert out[0].ndim == X.ndim - 1 + np.asarray(idx).ndim


def test_gather_int32_indices_and_int_data(check):
    data = rng.integers(-50, 50, (6, 3)).astype(np.int64)
    check("Gather", {"x": data, "i": np.array([5, -6, 2], np.int32)}, axis=0)


def test_gather_embedding_lookup(check):
    table = rng.standard_normal((10, 8)).astype(np.float32)
    ids = rng.integers(0, 10, (2, 7)).astype(np.int64)
    check("Gather", {"w": table, "ids": ids}, initializers=["w"])


def test_gather_shape_pattern_folds_to_constant():
    """Shape -> Gather with constant data folds during import (no node left)."""
    shape = np.array([2, 3, 4], np.int64)
    model = node_model("Gather", {"s": shape, "i": np.array(1, np.int64)},
                       initializers=["s", "i"])
    from deepc.frontends.onnx import convert

    graph = convert(model)
    assert graph.op_counts() == {"identity": 1}
    assert run_deepc(model, {})[0] == 3


def test_gather_out_of_range_index_is_an_error():
    with pytest.raises(IndexError):
        run_deepc(node_model("Gather", {"x": X, "i": np.array([3], np.int64)}, axis=0),
                  {"x": X, "i": np.array([3], np.int64)})


# -- GatherElements / GatherND ----------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(check, axis):
    shape = list(X.shape)
    shape[axis] = 6
    shape[(axis + 1) % 3] -= 1  # indices may be smaller than data off the axis
    n = X.shape[axis]
    idx = rng.integers(-n, n, shape).astype(np.int64)
    check("GatherElements", {"x": X, "i": idx}, opset=13, axis=axis)


@pytest.mark.parametrize(("data_shape", "idx", "batch_dims"), [
    ((3, 4, 5), [[0, 1], [2, -1]], 0),
    ((3, 4, 5), [[[0, 1, 2]], [[2, 3, 4]]], 0),
    ((3, 4), [[1], [0], [-1]], 0),
    ((3, 4, 5), [[1], [0], [3]], 1),
    ((3, 4, 5), [[[1, 2], [0, 4]], [[3, 3], [2, 0]], [[0, 0], [1, 1]]], 1),
    ((2, 2, 4, 5), [[[1], [2]], [[0], [-1]]], 2),
])
def test_gather_nd(check, data_shape, idx, batch_dims):
    data = rng.standard_normal(data_shape).astype(np.float32)
    check("GatherND", {"x": data, "i": np.array(idx, np.int64)}, opset=13,
             batch_dims=batch_dims)


def test_gather_nd_opset11(check):
    data = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    check("GatherND", {"x": data, "i": np.array([[1, 2], [0, 0]], np.int64)}, opset=11)


# -- ScatterElements / Scatter / ScatterND -----------------------------------------------------
def _distinct_indices(shape: tuple[int, ...], axis: int, extent: int) -> np.ndarray:
    """Indices with no duplicate target along `axis` (duplicates are undefined without a
    reduction), some of them negative."""
    perm = np.argsort(rng.random((*shape[:axis], extent, *shape[axis + 1:])), axis=axis)
    idx = np.take(perm, np.arange(shape[axis]), axis=axis)
    return np.where(rng.random(idx.shape) < 0.3, idx - extent, idx).astype(np.int64)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements(check_loops, axis):
    shape = (2, 3, 4)
    idx = _distinct_indices(shape, axis % 3, X.shape[axis])
    upd = rng.standard_normal(shape).astype(np.float32)
    check_loops("ScatterElements", {"x": X, "i": idx, "u": upd}, opset=13, axis=axis)


@pytest.mark.parametrize(("reduction", "opset"), [
    ("add", 16), ("mul", 16), ("max", 18), ("min", 18), ("none", 18),
])
def test_scatter_elements_reductions(check_loops, reduction, opset):
    idx = rng.integers(-3, 4, (3, 4, 5)).astype(np.int64)  # with duplicates
    if reduction == "none":
        idx = _distinct_indices((3, 3, 5), 1, 4)
    upd = rng.standard_normal(idx.shape).astype(np.float32)
    check_loops("ScatterElements", {"x": X, "i": idx, "u": upd}, opset=opset, axis=1,
             reduction=reduction)


@pytest.mark.parametrize("opset", [9, 10])
def test_scatter_deprecated(check_loops, opset):
    data = np.zeros((3, 3), np.float32)
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    upd = np.array([[1.0, 1.1, 1.2], [2.0, 2.1, 2.2]], np.float32)
    check_loops("Scatter", {"x": data, "i": idx, "u": upd}, opset=opset)
    check_loops("Scatter", {"x": data, "i": idx.T.copy(), "u": upd.T.copy()}, opset=opset, axis=1)


@pytest.mark.parametrize(("idx", "upd_shape"), [
    ([[1], [0]], (2, 4, 5)),
    ([[0, 1], [2, -1]], (2, 5)),
    ([[[0, 1, 2]], [[2, 3, 4]]], (2, 1)),
])
def test_scatter_nd(check_loops, idx, upd_shape):
    upd = rng.standard_normal(upd_shape).astype(np.float32)
    check_loops("ScatterND", {"x": X, "i": np.array(idx, np.int64), "u": upd}, opset=13)


@pytest.mark.parametrize(("reduction", "opset"), [("add", 16), ("mul", 16), ("max", 18),
                                                  ("min", 18)])
def test_scatter_nd_reductions(check_loops, reduction, opset):
    idx = np.array([[0, 1], [2, 3], [0, 1], [-3, 1]], np.int64)  # duplicates reduce
    upd = rng.standard_normal((4, 5)).astype(np.float32)
    check_loops("ScatterND", {"x": X, "i": idx, "u": upd}, opset=opset, reduction=reduction)


def _run_scheduled(model, feeds):
    """deepc.compile for the host, default schedules included, then the JIT runner."""
    graph = convert(model, {k: v.shape for k, v in feeds.items()})
    out = JitModel(deepc.compile(graph)).run(feeds)
    return [out[name] for name in graph.outputs]


@pytest.mark.parametrize("op", ["ScatterElements", "ScatterND"])
def test_scatter_scheduled_updates_stay_in_order(op):
    """Enough updates for default schedules to spread loops over threads: colliding updates
    must still apply one after the other. (onnxruntime's own result varies from run to run
    here, so the reference is the judge.)"""
    data = np.zeros((8, 64), np.float32)
    idx = rng.integers(-8, 8, (20000, 64) if op == "ScatterElements" else (20000, 1))
    upd = rng.integers(0, 4, (20000, 64)).astype(np.float32)  # exact sums in any order
    feeds = {"x": data, "i": idx.astype(np.int64), "u": upd}
    model = node_model(op, feeds, opset=16, reduction="add",
                       **({"axis": 0} if op == "ScatterElements" else {}))
    np.testing.assert_array_equal(_run_scheduled(model, feeds)[0], run_deepc(model, feeds)[0])


def test_scatter_nd_int(check_loops):
    data = np.arange(12, dtype=np.int64).reshape(3, 4)
    check_loops("ScatterND", {"x": data, "i": np.array([[2], [0]], np.int64),
                           "u": np.full((2, 4), -7, np.int64)}, opset=11)


# -- OneHot -----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("opset", [11, 13])
def test_one_hot(check, axis, opset):
    idx = np.array([[0, 3, -1], [-4, 2, 7]], np.int64)  # 7: out of range, all off
    depth = np.array(4, np.int64)
    values = np.array([0.5, 2.0], np.float32)
    check("OneHot", {"i": idx, "d": depth, "v": values}, opset=opset,
             initializers=["d", "v"], axis=axis)


def test_one_hot_opset9_float_indices_truncate(check):
    idx = np.array([0.0, 2.7, 1.0], np.float32)
    check("OneHot", {"i": idx, "d": np.array([3.0], np.float32),
                        "v": np.array([-1, 9], np.float32)}, opset=9, initializers=["d", "v"])
    check("OneHot", {"i": idx.astype(np.int64), "d": np.array([3.0], np.float32),
                        "v": np.array([-1, 9], np.int32)}, opset=9, initializers=["d", "v"])


def test_one_hot_runtime_values(check):
    idx = np.array([[1, 0], [2, -1]], np.int64)
    check("OneHot", {"i": idx, "d": np.array(3, np.int64),
                        "v": np.array([3, 8], np.int64)}, initializers=["d"])


def test_one_hot_runtime_depth_is_rejected():
    model = node_model("OneHot", {"i": np.array([1], np.int64), "d": np.array(3, np.int64),
                                  "v": np.array([0, 1], np.int64)}, initializers=["v"])
    with pytest.raises(ConversionError, match="depth"):
        run_deepc(model, {"i": np.array([1], np.int64), "d": np.array(3, np.int64)})


# -- Trilu ------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -7, 9])
def test_trilu(check, upper, k):
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    inputs = {"x": x} if k is None else {"x": x, "k": np.array(k, np.int64)}
    check("Trilu", inputs, opset=14, initializers=[] if k is None else ["k"], upper=upper)


def test_trilu_int_default_upper(check):
    check("Trilu", {"x": np.arange(20, dtype=np.int32).reshape(5, 4)}, opset=14)


# -- Compress / NonZero -----------------------------------------------------------------------
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(check, axis):
    cond = np.array([True, False, True, True], bool)
    if axis is not None:
        cond = cond[:min(4, X.shape[axis])]
    attrs = {} if axis is None else {"axis": axis}
    check("Compress", {"x": X, "c": cond}, opset=11, initializers=["c"], **attrs)


def test_compress_runtime_condition_is_rejected():
    cond = np.array([True, False, True], bool)
    model = node_model("Compress", {"x": X, "c": cond}, axis=0)
    with pytest.raises(ConversionError, match="Compress condition"):
        run_deepc(model, {"x": X, "c": cond})


def test_non_zero_constant_folds_and_dynamic_is_rejected():
    x = np.array([[1, 0, 3], [0, 5, 0]], np.int64)
    model = node_model("NonZero", {"x": x}, initializers=["x"])
    np.testing.assert_array_equal(run_deepc(model, {})[0], run_ort(model, {})[0])
    with pytest.raises(ConversionError, match="NonZero"):
        run_deepc(node_model("NonZero", {"x": x}), {"x": x})

import numpy as np
import pytest

import deepc
from deepc.compiler.jit_graph import run_graph_jit
from deepc.errors import ConversionError
from deepc.frontends.onnx import convert
from deepc.lowering.te_graph import run_graph_te
from deepc.runtime.jit_model import JitModel
from tests.helpers import (
    node_model,
    run_deepc,
    run_ort,
)

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 5)).astype(np.float32)
POS = np.abs(X) + 0.1
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
              "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
AXES_INPUT_SINCE = {op: 13 if op == "ReduceSum" else 18 for op in REDUCE_OPS}


def check_reduce(check, op: str, x: np.ndarray, axes: list[int] | None, opset: int,
                 const_axes: bool = True, **attrs: object) -> list[np.ndarray]:
    """Reduce over `axes` (None: not given), as an attribute or an input as the opset wants."""
    if opset < AXES_INPUT_SINCE[op]:
        if axes is not None:
            attrs["axes"] = axes
        return check(op, {"x": x}, opset=opset, **attrs)
    inputs = {"x": x}
    if axes is not None:
        inputs["axes"] = np.array(axes, np.int64)
    return check(op, inputs, opset=opset, rtol=1e-4, atol=1e-5,
                    initializers=["axes"] if axes is not None and const_axes else [], **attrs)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize(("axes", "keepdims"), [
    ([1], 1), ([1], 0), ([0, 2], 0), ([-1, 0], 1), (None, 1), (None, 0),
])
def test_reduce(check, op, opset, axes, keepdims):
    x = POS if op == "ReduceLogSum" else X
    check_reduce(check, op, x, axes, opset, keepdims=keepdims)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_int(check, op, dtype):
    x = np.array([[-7, 3, 3, 0], [-5, -6, -9, 2], [4, 1, -1, 8]], dtype)
    check_reduce(check, op, x, [1], 13, keepdims=0)
    check_reduce(check, op, x, [0], 13, keepdims=1)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_reduce_float64_and_float16(check, op):
    check_reduce(check, op, X.astype(np.float64), [2], 18)
    check(op, {"x": X.astype(np.float16)}, opset=11, axes=[1], rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_reduce_noop_with_empty_axes(check, op):
    opset = AXES_INPUT_SINCE[op]
    out = check_reduce(check, op, X, None, opset, noop_with_empty_axes=1)
    assert out[0].shape == X.shape
    out = check_reduce(check, op, X, [], opset, noop_with_empty_axes=1)
    assert out[0].shape == X.shape
    graph = convert(node_model(op, {"x": X}, opset=opset, noop_with_empty_axes=1))
    assert graph.op_counts() == {"identity": 1}


def test_reduce_empty_axes_input_means_all(check):
    out = check_reduce(check, "ReduceSum", X, [], 13, keepdims=1)
    assert out[0].shape == (1, 1, 1)


def test_reduce_scalar_and_bool(check):
    check_reduce(check, "ReduceSum", np.array(2.5, np.float32), None, 13)
    check_reduce(check, "ReduceMax", np.array([[True, False], [False, False]]), [1], 20)
    check_reduce(check, "ReduceMin", np.array([[True, False], [True, True]]), None, 20, keepdims=0)


def _run_with(run_graph):
    def run(model, feeds):
        graph = convert(model, {k: v.shape for k, v in feeds.items()})
        out = run_graph(graph, feeds)
        return [out[name] for name in graph.outputs]

    return run


def run_scheduled(model, feeds):
    """deepc.compile for the host, default schedules included, then the JIT runner."""
    return _run_with(lambda graph, f: JitModel(deepc.compile(graph)).run(f))(model, feeds)


@pytest.mark.parametrize("run", [run_deepc, _run_with(run_graph_te), _run_with(run_graph_jit)],
                         ids=["reference", "compute", "compiled"])
def test_reduce_log_sum_exp_is_stable(run):
    big = np.array([[1000.0, 1000.0, -1000.0], [-np.inf, -np.inf, -np.inf]], np.float32)
    out = run(node_model("ReduceLogSumExp", {"x": big}, opset=13, axes=[1]), {"x": big})
    np.testing.assert_allclose(out[0].ravel(), [1000 + np.log(2), -np.inf], rtol=1e-6)


def test_reduce_axes_stored_normalized():
    graph = convert(node_model("ReduceMean", {"x": X}, opset=13, axes=[-1, 0], keepdims=0))
    (node,) = graph.nodes
    assert node.op == "reduce_mean" and node.attrs["axes"] == (0, 2)
    assert node.attrs["keepdims"] == 0


def test_reduce_runtime_axes_are_rejected():
    model = node_model("ReduceMean", {"x": X, "a": np.array([1], np.int64)}, opset=18)
    with pytest.raises(ConversionError, match="reduction axes"):
        run_deepc(model, {"x": X, "a": np.array([1], np.int64)})


@pytest.mark.parametrize(("op", "dtype", "want"), [
    ("ReduceMax", np.float32, -np.inf), ("ReduceMin", np.float32, np.inf),
    ("ReduceMax", np.bool_, False), ("ReduceMin", np.int32, np.iinfo(np.int32).max),
])
def test_reduce_extreme_over_empty_axis_is_the_types_bound(run, op, dtype, want):
    """Opset 18 defines ReduceMax/ReduceMin of nothing as the type's lowest/highest value
    (bool inputs from opset 20)."""
    x = np.zeros((2, 0), dtype)
    model = node_model(op, {"x": x, "a": np.array([1], np.int64)},
                       opset=20 if dtype is np.bool_ else 18,
                       initializers=["a"], keepdims=0)
    np.testing.assert_array_equal(run(model, {"x": x})[0], np.full(2, want, dtype))


def test_reduce_sum_over_empty_axis_is_zero(check):
    check_reduce(check, "ReduceSum", np.zeros((2, 0, 3), np.float32), [1], 13, keepdims=0)


# -- ArgMax / ArgMin --------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_arg(check, op, axis, keepdims):
    check(op, {"x": X}, opset=13, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("select_last_index", [0, 1])
def test_arg_ties(check, op, select_last_index):
    x = np.array([[1, 3, 3, 0, 0], [2, 2, 2, 2, 2]], np.int32)
    check(op, {"x": x}, opset=12, axis=1, select_last_index=select_last_index)


@pytest.mark.parametrize("run", [_run_with(run_graph_te), _run_with(run_graph_jit)],
                         ids=["compute", "compiled"])
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("select_last_index", [0, 1])
def test_arg_nan_wins_as_in_the_reference(run, op, select_last_index):
    """onnxruntime's answer depends on where a NaN sits; deepc's follows numpy's (a NaN is
    the extreme), so the compiled op is compared with the reference here."""
    nan = np.nan
    x = np.array([[1, nan, 3, nan, 3], [3, 2, 3, 1, 0], [nan, nan, nan, nan, nan],
                  [np.inf, 2, nan, -np.inf, np.inf]], np.float32)
    model = node_model(op, {"x": x}, opset=12, axis=1, select_last_index=select_last_index)
    np.testing.assert_array_equal(run(model, {"x": x})[0], run_deepc(model, {"x": x})[0])


@pytest.mark.parametrize("opset", [7, 11])
def test_arg_old_opsets_default_axis(check, opset):
    check("ArgMax", {"x": X}, opset=opset)
    check("ArgMin", {"x": X}, opset=opset, keepdims=0)


# -- CumSum, CumProd --------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "opset"), [("CumSum", 14), ("CumProd", 26)])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize(("exclusive", "reverse"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_scan(check_loops, op, opset, axis, exclusive, reverse):
    check_loops(op, {"x": X, "a": np.array(axis, np.int64)}, opset=opset, initializers=["a"],
                exclusive=exclusive, reverse=reverse)


def test_cumprod_ints(check_loops):
    x = rng.integers(-4, 4, (3, 5)).astype(np.int32)
    check_loops("CumProd", {"x": x, "a": np.array(1, np.int64)}, opset=26, initializers=["a"],
                exclusive=1)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64])
def test_cumsum_dtypes_opset11(check_loops, dtype):
    x = rng.integers(-9, 9, (4, 6)).astype(dtype)
    check_loops("CumSum", {"x": x, "a": np.array([1], np.int32)}, opset=11, initializers=["a"],
             exclusive=1)


def test_cumsum_runtime_axis_is_rejected():
    model = node_model("CumSum", {"x": X, "a": np.array(0, np.int64)}, opset=14)
    with pytest.raises(ConversionError, match="CumSum axis"):
        run_deepc(model, {"x": X, "a": np.array(0, np.int64)})


@pytest.mark.parametrize(("shape", "axis", "exclusive"), [
    ((4096, 17), 1, 0), ((17, 4096), 0, 1), ((9000,), 0, 0), ((2, 9, 1200), 1, 1),
])
def test_cumsum_scheduled_scan_stays_in_order(shape, axis, exclusive):
    """Shapes where default schedules spread or vectorize loops: the scan must not be."""
    x = rng.standard_normal(shape).astype(np.float32)
    model = node_model("CumSum", {"x": x, "a": np.array(axis, np.int64)}, opset=14,
                       initializers=["a"], exclusive=exclusive)
    np.testing.assert_array_equal(run_scheduled(model, {"x": x})[0], run_ort(model, {"x": x})[0])


def test_cumsum_edges(check_loops):
    x = np.array([-0.0, 2.0, -2.0], np.float32)
    check_loops("CumSum", {"x": x, "a": np.array(0, np.int64)}, opset=14, initializers=["a"],
                reverse=1)
    check_loops("CumSum", {"x": x[:1], "a": np.array(0, np.int64)}, opset=14,
                initializers=["a"], exclusive=1)
    check_loops("CumSum", {"x": np.zeros((2, 0), np.float32), "a": np.array(1, np.int64)},
                opset=14, initializers=["a"])

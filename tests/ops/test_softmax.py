import numpy as np
import pytest

from deepc.frontends.onnx import convert
from tests.helpers import check_compiled, node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
OPS = ["Softmax", "LogSoftmax", "Hardmax"]
TOL = {"rtol": 1e-5, "atol": 1e-6}



@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [7, 11, 13, 21])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -3])
def test_softmax_family(check, op, opset, axis):
    # opset < 13 with axis 0 reduces rows of 120: float32 max loops of that length once
    # crashed LLVM 22's loop vectorizer when emitted as llvm.maxnum
    attrs = {} if axis is None else {"axis": axis}
    check(op, {"x": X}, opset=opset, **attrs, **TOL)


@pytest.mark.parametrize("op", OPS)
def test_softmax_family_rank1_and_f16(check, op):
    check(op, {"x": X[0, 0, 0]}, **TOL)
    if op == "Hardmax":
        return  # onnxruntime implements Hardmax for float32 only
    check(op, {"x": X.astype(np.float16)}, opset=13, axis=1, rtol=1e-3, atol=1e-3)
    check(op, {"x": X.astype(np.float64)}, opset=13, axis=2)


def test_hardmax_ties_pick_first(check):
    x = np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32)
    check("Hardmax", {"x": x}, opset=13)


def test_softmax_large_values_stay_finite(check):
    x = np.array([[1000, 1000, -1000], [-1e4, 0, 1e4]], np.float32)
    out = check("Softmax", {"x": x}, opset=13, **TOL)
    assert np.isfinite(out[0]).all()
    check("LogSoftmax", {"x": x}, opset=13, **TOL)


def test_old_opset_coerces_through_reshape():
    graph = convert(node_model("Softmax", {"x": X}, opset=11, axis=1))
    assert [n.op for n in graph.nodes] == ["reshape", "softmax", "reshape"]
    assert graph.nodes[0].attrs["shape"] == (2, 60)
    graph = convert(node_model("Softmax", {"x": X}, opset=11, axis=3))
    assert [n.op for n in graph.nodes] == ["softmax"]


@pytest.mark.parametrize("n", [72, 77, 120, 191])
def test_float_max_reduction_lengths_compile(n):
    """Regression: these trip counts aborted LLVM's vectorizer on llvm.maxnum reductions."""
    x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
    check_compiled("ReduceMax", {"x": x}, axes=[1], keepdims=0)

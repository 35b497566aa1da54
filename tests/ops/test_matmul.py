
import numpy as np
import pytest

from deepc.frontends.onnx import convert
from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops import get_op
from tests.helpers import node_model

rng = np.random.default_rng(0)


def rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


TOL = {"rtol": 1e-5, "atol": 1e-5}



@pytest.mark.parametrize(("a", "b"), [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((5,), (2, 5, 3)),
    ((1, 1, 7), (3, 7, 2)),
])
@pytest.mark.parametrize("opset", [9, 13])
def test_matmul(check, a, b, opset):
    check("MatMul", {"a": rand(*a), "b": rand(*b)}, opset=opset, **TOL)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.float64])
def test_matmul_dtypes(check, dtype):
    a = rng.integers(-5, 5, (2, 3, 4)).astype(dtype) if dtype != np.uint32 else \
        rng.integers(0, 5, (2, 3, 4)).astype(dtype)
    b = rng.integers(0, 5, (4, 2)).astype(dtype)
    check("MatMul", {"a": a, "b": b})


def test_matmul_float16_and_constant_weight(check):
    check("MatMul", {"a": rand(3, 8, dtype=np.float16), "b": rand(8, 4, dtype=np.float16)},
          rtol=1e-2, atol=1e-2)
    check("MatMul", {"a": rand(2, 3, 8), "b": rand(8, 4)}, initializers=["b"], **TOL)


@pytest.mark.parametrize(("a", "b", "c", "attrs"), [
    ((3, 4), (4, 5), (3, 5), {}),
    ((4, 3), (4, 5), (5,), {"transA": 1}),
    ((3, 4), (5, 4), (1, 5), {"transB": 1, "alpha": 0.5}),
    ((4, 3), (5, 4), (3, 1), {"transA": 1, "transB": 1, "beta": 2.0}),
    ((3, 4), (4, 5), (), {"alpha": 2.0, "beta": 0.5}),
    ((3, 4), (4, 5), None, {"alpha": 1.5}),
])
@pytest.mark.parametrize("opset", [7, 9, 11, 13])
def test_gemm(check, a, b, c, attrs, opset):
    if c is None and opset < 11:
        pytest.skip("C is required before opset 11")
    inputs = {"a": rand(*a), "b": rand(*b)}
    if c is not None:
        inputs["c"] = rand(*c)
    check("Gemm", inputs, opset=opset, initializers=["b"], **attrs, **TOL)


def test_gemm_int(run):
    # onnxruntime has no integer Gemm kernel: compare with numpy
    a = rng.integers(-5, 5, (4, 3)).astype(np.int32)
    b = rng.integers(-5, 5, (4, 2)).astype(np.int32)
    c = np.arange(2, dtype=np.int32)
    model = node_model("Gemm", {"a": a, "b": b, "c": c}, transA=1)
    (y,) = run(model, {"a": a, "b": b, "c": c})
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, a.T @ b + c)


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 1.0), (1.0, 0.5), (2.5, -1.5)])
def test_gemm_int_scaled(run, alpha, beta):
    # numpy's promotion in the reference: a fractional alpha or beta scales in float64, and
    # the sum is truncated back to the integer type
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    b = rng.integers(-5, 5, (4, 2)).astype(np.int32)
    c = rng.integers(-5, 5, (3, 1)).astype(np.int32)
    model = node_model("Gemm", {"a": a, "b": b, "c": c}, alpha=alpha, beta=beta)
    (y,) = run(model, {"a": a, "b": b, "c": c})
    assert y.dtype == np.int32
    np.testing.assert_array_equal(y, (alpha * (a @ b) + beta * c).astype(np.int32))


def test_gemm_float16(check):
    check("Gemm", {"a": rand(3, 8, dtype=np.float16), "b": rand(4, 8, dtype=np.float16),
                   "c": rand(4, dtype=np.float16)}, transB=1, alpha=0.5, rtol=1e-2, atol=1e-2)


def test_gemm_float64(check):
    check("Gemm", {"a": rand(3, 4, dtype=np.float64), "b": rand(4, 2, dtype=np.float64),
                      "c": rand(2, dtype=np.float64)}, alpha=0.3, beta=-1.0)


@pytest.mark.parametrize(("equation", "shapes"), [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij", [(3, 4)]),
    ("ji", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (1, 4, 5)]),
    ("...ij,jk", [(2, 2, 3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("i...->...", [(3, 2, 4)]),
    ("abc->", [(2, 3, 4)]),
])
def test_einsum(check, equation, shapes):
    inputs = {f"x{i}": rand(*s) for i, s in enumerate(shapes)}
    check("Einsum", inputs, opset=12, equation=equation, **TOL)


def test_einsum_int_and_spaces(check):
    a = rng.integers(-3, 3, (3, 4)).astype(np.int64)
    b = rng.integers(-3, 3, (4, 2)).astype(np.int64)
    check("Einsum", {"a": a, "b": b}, equation="ij, jk -> ik")


@pytest.mark.parametrize(("op", "ins", "attrs"), [
    ("matmul", [(3, 4), (5, 6)], {}),
    ("gemm", [(3, 4), (5, 6)], {}),
    ("gemm", [(3, 4), (4, 6), (4, 6)], {}),
    ("einsum", [(3, 4), (5, 6)], {"equation": "ij,jk->ik"}),
    ("einsum", [(3, 4)], {"equation": "ij->ix"}),
])
def test_shape_errors(op, ins, attrs):
    with pytest.raises(ValueError):
        get_op(op).infer_types([TensorType(s, "float32") for s in ins], Attrs(attrs))


def test_flops():
    graph = convert(node_model("MatMul", {"a": rand(2, 3, 4), "b": rand(4, 5)}))
    node = graph.nodes[0]
    flops = get_op(node.op).estimate_flops([graph.types[i] for i in node.inputs],
                                           [graph.types[node.outputs[0]]], node.attrs)
    assert flops == 2 * 2 * 3 * 4 * 5
    einsum = get_op("einsum")
    ins = [TensorType((2, 3, 4), "float32"), TensorType((4, 5), "float32")]
    outs = einsum.infer_types(ins, Attrs({"equation": "...ij,jk"}))
    assert outs[0].shape == (2, 3, 5)
    assert einsum.estimate_flops(ins, outs, Attrs({"equation": "...ij,jk"})) == 2 * 2 * 3 * 4 * 5


@pytest.mark.parametrize("shape", [(2, 2), (3, 3, 3), (2, 4, 4), (1, 5, 5), (1, 1)])
def test_det(check, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    check("Det", {"x": x}, opset=11, rtol=1e-4, atol=1e-5)


import numpy as np
import pytest

from deepc.frontends.onnx import convert
from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops import get_op
from tests.helpers import node_model, run_ort

rng = np.random.default_rng(0)


def rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


TOL = {"rtol": 1e-4, "atol": 1e-4}


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), [
    ((1, 3, 9, 9), (4, 3, 3, 3), {}),
    ((2, 3, 10, 9), (4, 3, 3, 2), {"strides": [2, 1], "pads": [1, 0, 2, 1]}),
    ((1, 4, 11, 11), (6, 2, 3, 3), {"group": 2, "dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    ((1, 8, 12, 12), (8, 1, 3, 3), {"group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ((1, 3, 7, 7), (5, 3, 7, 7), {"pads": [3, 3, 3, 3], "strides": [2, 2]}),
    ((2, 4, 17), (3, 4, 5), {"strides": [3], "pads": [2, 1], "dilations": [2]}),
    ((1, 2, 5, 6, 7), (3, 2, 3, 2, 3), {"strides": [1, 2, 2], "pads": [1, 0, 1, 1, 1, 0]}),
    ((1, 6, 8, 8), (4, 3, 1, 1), {"group": 2}),
])
@pytest.mark.parametrize("bias", [False, True])
def test_conv(check, x_shape, w_shape, attrs, bias):
    inputs = {"x": rand(*x_shape), "w": rand(*w_shape)}
    if bias:
        inputs["b"] = rand(w_shape[0])
    check("Conv", inputs, initializers=["w"], **attrs, **TOL)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize(("size", "kernel", "stride", "dilation"),
                         [(7, 3, 1, 1), (8, 4, 2, 1), (9, 3, 2, 2), (6, 2, 3, 1)])
def test_conv_auto_pad(check, mode, size, kernel, stride, dilation):
    if dilation > 1 and mode != "VALID":
        pytest.skip("onnxruntime rejects dilations with SAME auto_pad")
    x, w = rand(1, 2, size, size + 1), rand(3, 2, kernel, kernel)
    check("Conv", {"x": x, "w": w}, auto_pad=mode, strides=[stride, stride],
          dilations=[dilation, dilation], **TOL)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_opsets_and_runtime_weight(check, opset):
    check("Conv", {"x": rand(1, 3, 6, 6), "w": rand(2, 3, 3, 3), "b": rand(2)},
          opset=opset, kernel_shape=[3, 3], pads=[1, 1, 1, 1], **TOL)


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_conv_float16(check, op):
    # float16 sums accumulate in float32, as onnxruntime's do
    inputs = {"x": rand(1, 4, 6, 6, dtype=np.float16), "w": rand(4, 2, 3, 3, dtype=np.float16),
              "b": rand(4, dtype=np.float16)}
    check(op, inputs, group=2, strides=[2, 2], pads=[1, 0, 1, 1], rtol=1e-2, atol=1e-2)


def check_with_onnx_reference(run, op_type, inputs, rtol=1e-5, atol=1e-5, **attrs):
    """For cases onnxruntime does not implement: compare with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    model = node_model(op_type, inputs, **attrs)
    expected = ReferenceEvaluator(model).run(None, inputs)
    actual = run(model, inputs)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_same_dilated(run, mode):
    check_with_onnx_reference(run, "Conv", {"x": rand(1, 2, 9, 8), "w": rand(3, 2, 3, 3)},
                              auto_pad=mode, strides=[2, 2], dilations=[2, 2])


def test_conv_float64(run):
    inputs = {"x": rand(1, 2, 5, 5, dtype=np.float64), "w": rand(3, 2, 2, 2, dtype=np.float64)}
    check_with_onnx_reference(run, "Conv", inputs, pads=[1, 0, 0, 1], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), [
    ((1, 3, 4, 4), (3, 2, 3, 3), {}),
    ((1, 2, 3, 3), (2, 3, 3, 3), {"strides": [2, 2]}),
    ((2, 4, 3, 5), (4, 2, 3, 2), {"strides": [2, 3], "pads": [1, 0, 1, 1], "group": 2}),
    ((1, 2, 4, 4), (2, 1, 3, 3), {"strides": [2, 2], "output_padding": [1, 1],
                                  "pads": [1, 1, 1, 1]}),
    ((1, 2, 4, 4), (2, 3, 2, 2), {"dilations": [2, 2], "strides": [2, 2]}),
    ((1, 2, 4, 5), (2, 2, 3, 3), {"strides": [3, 2], "dilations": [2, 3], "pads": [1, 2, 0, 1]}),
    ((1, 1, 3, 4), (1, 2, 4, 3), {"strides": [4, 3], "dilations": [2, 3],
                                  "output_padding": [1, 2]}),
    ((1, 3, 6), (3, 2, 4), {"strides": [2], "pads": [1, 2]}),
    ((1, 2, 3, 3, 3), (2, 2, 2, 2, 2), {"strides": [2, 1, 2]}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [10, 11]}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [9, 9]}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "output_shape": [10, 10],
                                  "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    ((1, 2, 5, 5), (2, 2, 3, 3), {"strides": [2, 2], "auto_pad": "VALID"}),
])
@pytest.mark.parametrize("bias", [False, True])
def test_conv_transpose(check, x_shape, w_shape, attrs, bias):
    inputs = {"x": rand(*x_shape), "w": rand(*w_shape)}
    if bias:
        inputs["b"] = rand(w_shape[1] * attrs.get("group", 1))
    check("ConvTranspose", inputs, initializers=["w"], **attrs, **TOL)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_transpose_opsets(check, opset):
    check("ConvTranspose", {"x": rand(1, 2, 3, 3), "w": rand(2, 2, 2, 2)}, opset=opset,
          strides=[2, 2], **TOL)


def test_conv_shape_errors():
    op = get_op("conv")
    with pytest.raises(ValueError, match="input channels"):
        op.infer_types([TensorType((1, 3, 5, 5), "float32"), TensorType((2, 2, 3, 3), "float32")],
                       Attrs({}))
    with pytest.raises(ValueError, match="does not fit"):
        op.infer_types([TensorType((1, 3, 2, 2), "float32"), TensorType((2, 3, 3, 3), "float32")],
                       Attrs({}))


def test_conv_flops():
    model = node_model("Conv", {"x": rand(1, 4, 8, 8), "w": rand(6, 2, 3, 3)}, group=2,
                       pads=[1, 1, 1, 1], initializers=["w"])
    graph = convert(model)
    node = graph.nodes[0]
    op = get_op(node.op)
    ins = [graph.types[i] for i in node.inputs]
    flops = op.estimate_flops(ins, [graph.types[node.outputs[0]]], node.attrs)
    assert flops == 2 * (6 * 8 * 8) * (2 * 3 * 3)


def test_conv_transpose_output_shape_beyond_kernel_reach_is_output_padding(run):
    inputs = {"x": rand(1, 2, 5, 5), "w": rand(2, 2, 3, 3), "b": rand(2)}
    padded = node_model("ConvTranspose", inputs, strides=[2, 2], output_padding=[1, 1])
    (expected,) = run_ort(padded, inputs)
    model = node_model("ConvTranspose", inputs, strides=[2, 2], output_shape=[12, 12])
    (actual,) = run(model, inputs)
    np.testing.assert_allclose(actual, expected, **TOL)


def test_conv_transpose_and_pool_flops():
    x, w = TensorType((1, 4, 5, 5), "float32"), TensorType((4, 3, 2, 2), "float32")
    attrs = Attrs({"strides": (2, 2)})
    out = get_op("conv_transpose").infer_types([x, w], attrs)
    assert out[0].shape == (1, 3, 10, 10)
    assert get_op("conv_transpose").estimate_flops([x, w], out, attrs) == 2 * 4 * 25 * 3 * 4
    pool_attrs = Attrs({"kernel_shape": (3, 3), "strides": (2, 2)})
    out = get_op("max_pool").infer_types([x], pool_attrs)
    assert out[0].shape == (1, 4, 2, 2)
    assert get_op("max_pool").estimate_flops([x], out, pool_attrs) == 16 * 9

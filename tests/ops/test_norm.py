
import numpy as np
import pytest

from deepc.errors import ConversionError
from tests.helpers import node_model, run_deepc

rng = np.random.default_rng(0)


def rand(*shape: int, dtype: type = np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def bn_params(c: int, dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {"scale": rand(c, dtype=dtype), "bias": rand(c, dtype=dtype),
            "mean": rand(c, dtype=dtype), "var": (np.abs(rand(c)) + 0.5).astype(dtype)}


TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (1, 4, 3, 5), (1, 2, 3, 2, 4)])
def test_batch_norm(check, opset, shape):
    check("BatchNormalization", {"x": rand(*shape), **bn_params(shape[1])}, opset=opset,
          initializers=["scale", "bias", "mean", "var"], epsilon=1e-3, **TOL)


def test_batch_norm_runtime_params_and_f16(check):
    check("BatchNormalization", {"x": rand(2, 3, 4, 4), **bn_params(3)}, **TOL)
    check("BatchNormalization", {"x": rand(2, 3, 4, 4, dtype=np.float16),
                                    **bn_params(3, np.float16)}, rtol=1e-2, atol=1e-2)


def test_batch_norm_mixed_precision(check):
    check("BatchNormalization", {"x": rand(2, 3, 4, dtype=np.float16), **bn_params(3)},
          opset=15, rtol=1e-2, atol=1e-2)


def test_batch_norm_per_activation(run):
    x = rand(2, 3, 4)
    params = {"scale": rand(3, 4), "bias": rand(3, 4), "mean": rand(3, 4),
              "var": np.abs(rand(3, 4)) + 0.5}
    model = node_model("BatchNormalization", {"x": x, **params}, opset=7, spatial=0,
                       initializers=list(params))
    expected = (x - params["mean"]) / np.sqrt(params["var"] + 1e-5) * params["scale"] \
        + params["bias"]
    np.testing.assert_allclose(run(model, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("opset", "n_outputs"), [(9, 5), (15, 3)])
def test_batch_norm_statistics_outside_training_mode_rejected(opset, n_outputs):
    model = node_model("BatchNormalization", {"x": rand(2, 3, 4), **bn_params(3)},
                       n_outputs=n_outputs, opset=opset)
    with pytest.raises(ConversionError, match="eval mode"):
        run_deepc(model, {"x": rand(2, 3, 4), **bn_params(3)})


@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 4, 3, 5), (1, 2, 3, 2, 4)])
@pytest.mark.parametrize("opset", [7, 22])
def test_instance_norm(check, shape, opset):
    check("InstanceNormalization", {"x": rand(*shape), "s": rand(shape[1]),
                                       "b": rand(shape[1])}, opset=opset, epsilon=1e-3, **TOL)


@pytest.mark.parametrize(("axis", "with_bias"), [(-1, True), (-1, False), (1, True), (0, True),
                                                 (-2, True)])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_layer_norm(check, axis, with_bias, n_outputs):
    x = rand(2, 3, 4)
    inner = x.shape[axis % 3:]
    inputs = {"x": x, "s": rand(*inner)}
    if with_bias:  # (onnxruntime crashes on an explicitly empty bias name)
        inputs["b"] = rand(*inner)
    check("LayerNormalization", inputs, opset=17, axis=axis, n_outputs=n_outputs, **TOL)


def test_layer_norm_float64_stats_are_float32(check):
    check("LayerNormalization", {"x": rand(2, 3, dtype=np.float64),
                                    "s": rand(3, dtype=np.float64)}, opset=17, n_outputs=3)


def test_layer_norm_broadcast_scale_and_f16(check):
    check("LayerNormalization", {"x": rand(2, 3, 4), "s": rand(1, 4), "b": rand(4)},
          opset=17, axis=1, **TOL)
    check("LayerNormalization", {"x": rand(2, 3, 8, dtype=np.float16),
                                    "s": rand(8, dtype=np.float16)},
             opset=17, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize(("shape", "groups"), [((2, 6, 4, 3), 3), ((1, 4, 5), 4), ((2, 4, 5), 1)])
def test_group_norm(check, opset, shape, groups):
    n = groups if opset < 21 else shape[1]
    check("GroupNormalization", {"x": rand(*shape), "s": rand(n), "b": rand(n)},
          opset=opset, num_groups=groups, initializers=["s", "b"], epsilon=1e-3, **TOL)


def test_group_norm_opset18_needs_constant_params():
    model = node_model("GroupNormalization", {"x": rand(1, 4, 5), "s": rand(2), "b": rand(2)},
                       opset=18, num_groups=2)
    with pytest.raises(ConversionError, match="compile time"):
        run_deepc(model, {"x": rand(1, 4, 5), "s": rand(2), "b": rand(2)})


@pytest.mark.parametrize(("size", "attrs"), [(3, {}), (5, {"alpha": 0.01, "beta": 0.5,
                                                           "bias": 2.0}), (1, {})])
@pytest.mark.parametrize("opset", [7, 13])
def test_lrn(check, size, attrs, opset):
    check("LRN", {"x": rand(2, 6, 3, 4)}, opset=opset, size=size, **attrs, **TOL)


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_size(run, size):
    # onnxruntime only implements odd sizes; the spec's window is asymmetric for even ones
    x = rand(1, 6, 2, 3)
    model = node_model("LRN", {"x": x}, size=size, alpha=0.1)
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    square_sum = np.stack([np.square(x[:, max(0, c - lo):c + hi + 1]).sum(axis=1)
                           for c in range(6)], axis=1)
    expected = x / (1 + 0.1 / size * square_sum) ** 0.75
    np.testing.assert_allclose(run(model, {"x": x})[0], expected, **TOL)


@pytest.mark.parametrize(("axis", "p"), [(-1, 2), (1, 1), (0, 2), (2, 1)])
def test_lp_normalization(check, axis, p):
    check("LpNormalization", {"x": rand(3, 4, 5)}, axis=axis, p=p, **TOL)


@pytest.mark.parametrize("p", [1, 2])
def test_lp_normalization_of_zeros_is_zero(run, p):
    """onnx's reference (and its node test) gives 0, not NaN, where the norm is 0."""
    x = rand(3, 4)
    x[:, 1] = 0
    model = node_model("LpNormalization", {"x": x}, axis=0, p=p)
    expected = x / np.linalg.norm(x, ord=p, axis=0, keepdims=True).clip(min=1e-30)
    np.testing.assert_allclose(run(model, {"x": x})[0], expected, **TOL)


@pytest.mark.parametrize("opset", [9, 13])
@pytest.mark.parametrize("axes", [None, [1], [0, 2], [-1, -2]])
def test_mean_variance_normalization(check, opset, axes):
    attrs = {} if axes is None else {"axes": axes}
    check("MeanVarianceNormalization", {"x": rand(2, 3, 4, 5)}, opset=opset, **attrs, **TOL)


@pytest.mark.parametrize("opset", [7, 10, 12, 13, 22])
def test_dropout(check, opset):
    check("Dropout", {"x": rand(2, 3, 4)}, opset=opset)
    if opset >= 12:
        check("Dropout", {"x": rand(2, 3, 4)}, opset=opset, n_outputs=2)


@pytest.mark.parametrize(("opset", "dtype"), [(7, np.float32), (10, np.bool_)])
def test_dropout_old_mask_keeps_everything(run, opset, dtype):
    # the mask marks kept elements; onnxruntime returns zeros before opset 12, the onnx
    # reference and opset 12+ all-true, which deepc follows
    x = rand(2, 3)
    y, mask = run(node_model("Dropout", {"x": x}, opset=opset, n_outputs=2), {"x": x})
    np.testing.assert_array_equal(y, x)
    assert mask.dtype == dtype and mask.shape == x.shape and mask.all()


def test_dropout_inference_inputs(check):
    ratio, training = np.array(0.3, np.float32), np.array(False)
    check("Dropout", {"x": rand(2, 3), "r": ratio, "t": training}, opset=13, n_outputs=2,
          initializers=["r", "t"])
    model = node_model("Dropout", {"x": rand(2, 3), "r": ratio, "t": np.array(True)},
                       opset=13, initializers=["r", "t"])
    with pytest.raises(ConversionError, match="training_mode"):
        run_deepc(model, {"x": rand(2, 3)})


def test_batch_norm_training_mode(run):
    """Batch statistics and blended running statistics, as onnx's reference computes them."""
    from onnx.reference import ReferenceEvaluator

    c = 3
    feeds = {"x": rand(2, c, 4, 5), "s": rand(c), "b": rand(c), "m": rand(c),
             "v": np.abs(rand(c)) + 0.5}
    model = node_model("BatchNormalization", feeds, n_outputs=3, opset=15, training_mode=1,
                       momentum=0.8)
    want = ReferenceEvaluator(model).run(None, feeds)
    for got, expected in zip(run(model, feeds), want):
        np.testing.assert_allclose(got, expected, **TOL)

import numpy as np
import pytest

from tests.helpers import check_compiled

rng = np.random.default_rng(0)


X = rng.standard_normal((3, 4, 5)).astype(np.float32)
POS = np.abs(X) + 0.1
Y = rng.standard_normal((4, 1)).astype(np.float32)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Exp", "Floor", "Ceil", "Round", "Sign", "Sin",
                                "Cos", "Tan", "Atan", "Sinh", "Cosh", "Asinh", "Erf",
                                "Identity", "Relu", "Sigmoid", "Tanh", "Softplus", "Softsign",
                                "HardSwish", "Mish", "Reciprocal"])
def test_unary(check, op):
    check(op, {"x": X}, opset=18)


@pytest.mark.parametrize("op", ["Log", "Sqrt"])
def test_unary_positive(check, op):
    check(op, {"x": POS})


@pytest.mark.parametrize(("op", "attrs"), [
    ("LeakyRelu", {"alpha": 0.2}), ("Elu", {}), ("Selu", {}), ("Celu", {"alpha": 2.0}),
    ("HardSigmoid", {}), ("ThresholdedRelu", {"alpha": 0.5}), ("Shrink", {"lambd": 0.3}),
    ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
])
def test_activation(check, op, attrs):
    opset = 20 if op == "Gelu" else 17
    check(op, {"x": X}, opset=opset, **attrs)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu"])
def test_binary_broadcast(check, op):
    check(op, {"x": X, "y": Y})


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_compare(check, op):
    check(op, {"x": X, "y": Y})


def test_integer_div_truncates(check):
    a = np.array([7, -7, 9], np.int32)
    b = np.array([2, 2, -4], np.int32)
    check("Div", {"a": a, "b": b})


def test_where_and_cast(check):
    c = X > 0
    check("Where", {"c": c, "x": X, "y": Y})
    check("Cast", {"x": X * 10}, to=6)


@pytest.mark.parametrize("opset", [7, 17])
def test_clip(check, opset):
    if opset < 11:
        check("Clip", {"x": X}, opset=opset, min=-0.5, max=0.5)
    else:
        lo, hi = np.array(-0.5, np.float32), np.array(0.5, np.float32)
        check("Clip", {"x": X, "lo": lo, "hi": hi}, opset=opset, initializers=["lo", "hi"])
        check("Clip", {"x": X, "lo": lo, "hi": hi}, opset=opset)


@pytest.mark.parametrize("op", ["Exp", "Tanh", "Sigmoid", "Softplus", "Elu", "Mish"])
def test_vector_math_over_the_whole_float_range(op):
    """exp and tanh are inline polynomials in compiled code: check them at the extremes."""
    x = np.concatenate([np.linspace(-110, 110, 2001), [0.0, -0.0, 1e-8, -1e-8, np.inf,
                                                        -np.inf, np.nan, 88.7, -87.4]])
    check_compiled(op, {"x": x.astype(np.float32)}, opset=18, rtol=2e-6, atol=1e-7)

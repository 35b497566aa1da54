import numpy as np
import pytest

from tests.helpers import check_op

rng = np.random.default_rng(0)
X = rng.standard_normal((3, 4, 5)).astype(np.float32)
POS = np.abs(X) + 0.1
Y = rng.standard_normal((4, 1)).astype(np.float32)


@pytest.mark.parametrize("op", ["Abs", "Neg", "Exp", "Floor", "Ceil", "Round", "Sign", "Sin",
                                "Cos", "Tan", "Atan", "Sinh", "Cosh", "Asinh", "Erf",
                                "Identity", "Relu", "Sigmoid", "Tanh", "Softplus", "Softsign",
                                "HardSwish", "Mish", "Reciprocal"])
def test_unary(op):
    check_op(op, {"x": X}, opset=18)


@pytest.mark.parametrize("op", ["Log", "Sqrt"])
def test_unary_positive(op):
    check_op(op, {"x": POS})


@pytest.mark.parametrize(("op", "attrs"), [
    ("LeakyRelu", {"alpha": 0.2}), ("Elu", {}), ("Selu", {}), ("Celu", {"alpha": 2.0}),
    ("HardSigmoid", {}), ("ThresholdedRelu", {"alpha": 0.5}), ("Shrink", {"lambd": 0.3}),
    ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
])
def test_activation(op, attrs):
    opset = 20 if op == "Gelu" else 17
    check_op(op, {"x": X}, opset=opset, **attrs)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "PRelu"])
def test_binary_broadcast(op):
    check_op(op, {"x": X, "y": Y})


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_compare(op):
    check_op(op, {"x": X, "y": Y})


def test_integer_div_truncates():
    a = np.array([7, -7, 9], np.int32)
    b = np.array([2, 2, -4], np.int32)
    check_op("Div", {"a": a, "b": b})


def test_where_and_cast():
    c = X > 0
    check_op("Where", {"c": c, "x": X, "y": Y})
    check_op("Cast", {"x": X * 10}, to=6)


@pytest.mark.parametrize("opset", [7, 17])
def test_clip(opset):
    if opset < 11:
        check_op("Clip", {"x": X}, opset=opset, min=-0.5, max=0.5)
    else:
        lo, hi = np.array(-0.5, np.float32), np.array(0.5, np.float32)
        check_op("Clip", {"x": X, "lo": lo, "hi": hi}, opset=opset, initializers=["lo", "hi"])
        check_op("Clip", {"x": X, "lo": lo, "hi": hi}, opset=opset)

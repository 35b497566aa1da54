"""ONNX elementwise, activation, comparison and logic ops."""

from __future__ import annotations

import numpy as np
from onnx import helper

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter, direct
from deepc.ir.types import dtype_name

SAME_NAME = {
    "Abs": "abs", "Neg": "neg", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
    "Reciprocal": "reciprocal", "Floor": "floor", "Ceil": "ceil", "Round": "round",
    "Sign": "sign", "Sin": "sin", "Cos": "cos", "Tan": "tan", "Asin": "asin", "Acos": "acos",
    "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh", "Asinh": "asinh", "Acosh": "acosh",
    "Atanh": "atanh", "Erf": "erf", "Identity": "identity", "Not": "not",
    "BitwiseNot": "bitwise_not", "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
    "Softplus": "softplus", "Softsign": "softsign", "HardSwish": "hard_swish", "Mish": "mish",
    "IsNaN": "isnan",
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "PRelu": "prelu",
    "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
    "Max": "max", "Min": "min", "Sum": "sum", "Mean": "mean",
    "Equal": "equal", "Less": "less", "LessOrEqual": "less_equal", "Greater": "greater",
    "GreaterOrEqual": "greater_equal", "And": "and", "Or": "or", "Xor": "xor",
    "Where": "where",
}
for _onnx, _op in SAME_NAME.items():
    direct(_onnx, _op)

direct("LeakyRelu", "leaky_relu", {"alpha": ("alpha", 0.01)})
direct("Elu", "elu", {"alpha": ("alpha", 1.0)})
direct("Celu", "celu", {"alpha": ("alpha", 1.0)})
direct("Selu", "selu", {"alpha": ("alpha", 1.67326319217681884765625),
                        "gamma": ("gamma", 1.05070102214813232421875)})
direct("HardSigmoid", "hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)})
direct("ThresholdedRelu", "thresholded_relu", {"alpha": ("alpha", 1.0)})
direct("Shrink", "shrink", {"bias": ("bias", 0.0), "lambd": ("lambd", 0.5)})
direct("Gelu", "gelu", {"approximate": ("approximate", "none")})
direct("Mod", "mod", {"fmod": ("fmod", 0)})
direct("BitShift", "bit_shift", {"direction": ("direction", "LEFT")})
direct("IsInf", "isinf", {"detect_positive": ("detect_positive", 1),
                          "detect_negative": ("detect_negative", 1)})


@converter("Cast")
def cast(b: GraphBuilder, n: OnnxNode) -> None:
    to = dtype_name(helper.tensor_dtype_to_np_dtype(n.attr("to")))
    b.emit("cast", n.inputs[:1], cast_attrs(n, to), outputs=n.outputs, name=n.name)


@converter("CastLike")
def cast_like(b: GraphBuilder, n: OnnxNode) -> None:
    b.emit("cast", n.inputs[:1], cast_attrs(n, b.type(n.inputs[1]).dtype), outputs=n.outputs,
           name=n.name)


@converter("BitCast")
def bit_cast(b: GraphBuilder, n: OnnxNode) -> None:
    to = dtype_name(helper.tensor_dtype_to_np_dtype(n.attr("to")))
    b.emit("bitcast", n.inputs[:1], {"to": to}, outputs=n.outputs, name=n.name)


def cast_attrs(n: OnnxNode, to: str) -> dict[str, object]:
    """`saturate` (opset 19, on by default) only means something for the float8 formats;
    float8_e8m0fnu is rounded up (`round_mode`, opset 24), the only mode compiled."""
    if to == "float8_e8m0fnu" and n.attr("round_mode", "up") not in ("up", b"up"):
        raise ConversionError(f"node {n.name!r} ({n.op_type}): round_mode "
                              f"{n.attr('round_mode')!r} is not supported (only 'up')")
    if to.startswith("float8"):
        return {"to": to, "saturate": int(n.attr("saturate", 1))}
    return {"to": to}


@converter("Clip")
def clip(b: GraphBuilder, n: OnnxNode) -> None:
    """Clip bounds are attributes before opset 11 and optional inputs after it.

    Constant bounds become attributes of one `clip`; bounds computed at run time become
    `max`/`min` ops.
    """
    x = n.inputs[0]
    if n.opset < 11:
        lo, hi = n.attr("min", None), n.attr("max", None)
        b.emit("clip", [x], {"min": lo, "max": hi}, outputs=n.outputs, name=n.name)
        return
    bounds = [n.input(1), n.input(2)]
    consts = [b.const(v) for v in bounds]
    if all(not v or c is not None for v, c in zip(bounds, consts)):
        lo, hi = (None if c is None else np.asarray(c).reshape(-1)[0].item() for c in consts)
        b.emit("clip", [x], {"min": lo, "max": hi}, outputs=n.outputs, name=n.name)
        return
    y = x
    if bounds[0]:
        y = b.emit1("max", [y, bounds[0]], name=n.name)
    if bounds[1]:
        y = b.emit1("min", [y, bounds[1]], name=n.name)
    b.emit("identity", [y], outputs=n.outputs, name=n.name)

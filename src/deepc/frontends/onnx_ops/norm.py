"""ONNX normalization ops (BatchNormalization, LayerNormalization, ...) and inference Dropout."""

from __future__ import annotations

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter, direct
from deepc.ops.common import normalize_axes, normalize_axis

EPSILON = 1e-5


def _extra_outputs(n: OnnxNode, what: str) -> None:
    if any(n.outputs[1:]):
        raise ConversionError(
            f"node {n.name!r} ({n.op_type}): {what} outputs are requested, which only training "
            "computes; deepc compiles inference — export the model in eval mode")


@converter("BatchNormalization")
def batch_norm(b: GraphBuilder, n: OnnxNode) -> None:
    """Inference only. Opsets 7-8 `spatial=0` normalizes per activation: the parameters then
    have shape x.shape[1:], which `batch_norm` broadcasts as they are."""
    if int(n.attr("training_mode", 0)):
        _batch_norm_training(b, n)
        return
    _extra_outputs(n, "running or saved statistics")
    x = n.inputs[0]
    if n.opset < 9 and not int(n.attr("spatial", 1)):
        per_activation = b.type(x).shape[1:]
        for p in n.inputs[1:5]:
            if b.type(p).shape != per_activation:
                raise ConversionError(
                    f"node {n.name!r} (BatchNormalization): spatial=0 needs parameters of "
                    f"shape {per_activation}, {p!r} has {b.type(p).shape}")
    b.emit("batch_norm", n.inputs[:5], {"epsilon": float(n.attr("epsilon", EPSILON))},
           outputs=n.outputs[:1], name=n.name)


def _batch_norm_training(b: GraphBuilder, n: OnnxNode) -> None:
    """training_mode=1 (opset 14+): normalise by the batch's mean and population variance
    over every axis but the channels, and blend them into the running statistics
    (input * momentum + batch * (1 - momentum))."""
    x, scale, bias, mean, var = n.inputs[:5]
    xt = b.type(x)
    axes = (0, *range(2, xt.rank))
    shape = (xt.shape[1], *(1,) * (xt.rank - 2))

    def op(name: str, *ins: str, **attrs: object) -> str:
        return b.emit1(name, list(ins), attrs, name=n.name)

    def c(value: float) -> str:
        return b.add_constant(np.array(value, xt.dtype))

    batch_mean = op("reduce_mean", x, axes=axes, keepdims=1)
    centred = op("sub", x, batch_mean)
    batch_var = op("reduce_mean", op("mul", centred, centred), axes=axes, keepdims=1)
    inv = op("div", c(1.0), op("sqrt", op("add", batch_var, c(float(n.attr("epsilon", EPSILON))))))
    y = op("add", op("mul", op("mul", centred, inv), op("reshape", scale, shape=shape)),
           op("reshape", bias, shape=shape))
    b.emit("identity", [y], outputs=n.outputs[:1], name=n.name)
    momentum = float(n.attr("momentum", 0.9))
    for running, batch, out in ((mean, batch_mean, n.outputs[1:2]),
                                (var, batch_var, n.outputs[2:3])):
        if out and out[0]:
            flat = op("reshape", batch, shape=(xt.shape[1],))
            b.emit("add", [op("mul", running, c(momentum)), op("mul", flat, c(1 - momentum))],
                   outputs=out, name=n.name)


direct("InstanceNormalization", "instance_norm", {"epsilon": ("epsilon", EPSILON)})
direct("LRN", "lrn", {"size": ("size", None), "alpha": ("alpha", 1e-4),
                      "beta": ("beta", 0.75), "bias": ("bias", 1.0)})


@converter("LayerNormalization")
def layer_norm(b: GraphBuilder, n: OnnxNode) -> None:
    if int(n.attr("stash_type", 1)) != 1:
        raise ConversionError(f"node {n.name!r} (LayerNormalization): only stash_type=1 "
                              "(float32 statistics) is supported")
    rank = b.type(n.inputs[0]).rank
    attrs = {"axis": normalize_axis(int(n.attr("axis", -1)), rank),
             "epsilon": float(n.attr("epsilon", EPSILON)), "stats": int(any(n.outputs[1:]))}
    outputs = (*n.outputs, "", "")[:3] if attrs["stats"] else n.outputs[:1]
    b.emit("layer_norm", [i for i in n.inputs[:3] if i], attrs, outputs=outputs, name=n.name)


@converter("GroupNormalization")
def group_norm(b: GraphBuilder, n: OnnxNode) -> None:
    """Opsets 18-20 take one scale and bias per group; they become per-channel constants."""
    x, scale, bias = n.inputs[:3]
    groups = int(n.attr("num_groups"))
    channels = b.type(x).shape[1]
    if n.opset < 21:
        if channels % groups:
            raise ConversionError(f"node {n.name!r} (GroupNormalization): {channels} channels "
                                  f"cannot form {groups} groups")
        scale, bias = (
            b.add_constant(np.repeat(b.require_const(p, f"per-group {what}", n.name),
                                     channels // groups))
            for p, what in ((scale, "scale"), (bias, "bias")))
    elif int(n.attr("stash_type", 1)) != 1:
        raise ConversionError(f"node {n.name!r} (GroupNormalization): only stash_type=1 "
                              "(float32 statistics) is supported")
    attrs = {"num_groups": groups, "epsilon": float(n.attr("epsilon", EPSILON))}
    b.emit("group_norm", [x, scale, bias], attrs, outputs=n.outputs, name=n.name)


@converter("LpNormalization")
def lp_normalization(b: GraphBuilder, n: OnnxNode) -> None:
    rank = b.type(n.inputs[0]).rank
    attrs = {"axis": normalize_axis(int(n.attr("axis", -1)), rank), "p": int(n.attr("p", 2))}
    b.emit("lp_normalization", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("MeanVarianceNormalization")
def mean_variance_normalization(b: GraphBuilder, n: OnnxNode) -> None:
    rank = b.type(n.inputs[0]).rank
    axes = normalize_axes(n.attr("axes", (0, 2, 3)), rank)
    b.emit("mean_variance_normalization", n.inputs[:1], {"axes": axes}, outputs=n.outputs,
           name=n.name)


@converter("Dropout")
def dropout(b: GraphBuilder, n: OnnxNode) -> None:
    """Inference: the output is the input and the mask is all true (all ones before opset
    10, where the mask has the input's type)."""
    training = n.input(2)
    if training and bool(b.require_const(training, "training_mode", n.name)):
        ratio = b.require_const(n.input(1), "Dropout ratio", n.name) if n.input(1) else 0.5
        if float(np.asarray(ratio)) != 0:
            raise ConversionError(
                f"node {n.name!r} (Dropout): training_mode=true drops values at random; deepc "
                "compiles inference — export the model in eval mode")
    x = n.inputs[0]
    b.emit("identity", [x], outputs=n.outputs[:1], name=n.name)
    if len(n.outputs) > 1 and n.outputs[1]:
        ty = b.type(x)
        dtype = bool if n.opset >= 10 else ty.dtype
        b.add_constant(np.ones(ty.shape, dtype), name=n.outputs[1])

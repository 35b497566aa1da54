"""ONNX Conv, ConvTranspose, DeformConv and Col2Im, and the auto_pad resolution shared with the
pooling converters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def spatial_ints(n: OnnxNode, key: str, nd: int, default: int) -> tuple[int, ...]:
    """An INTS attribute with one value per spatial axis (ONNX default when absent)."""
    value = tuple(int(v) for v in (n.attr(key) or (default,) * nd))
    if len(value) != nd:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): {key} {value} must have {nd} "
                              f"values, one per spatial axis")
    return value


def auto_pad(n: OnnxNode) -> str:
    mode = n.attr("auto_pad", "NOTSET") or "NOTSET"
    if mode not in AUTO_PADS:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): auto_pad {mode!r} is not one of "
                              f"{', '.join(AUTO_PADS)}")
    return mode


def split_pad(total: int, mode: str) -> tuple[int, int]:
    """(begin, end) of a total padding; the odd one goes to the end unless SAME_LOWER."""
    small = total // 2
    return (total - small, small) if mode == "SAME_LOWER" else (small, total - small)


def resolve_pads(n: OnnxNode, in_shape: Sequence[int], kernel: Sequence[int],
                 strides: Sequence[int], dilations: Sequence[int]) -> tuple[int, ...]:
    """Explicit pads (begins, then ends) for a windowed op, resolving auto_pad."""
    nd = len(in_shape)
    mode = auto_pad(n)
    if mode == "NOTSET":
        pads = tuple(int(p) for p in (n.attr("pads") or (0,) * (2 * nd)))
        if len(pads) != 2 * nd or min(pads, default=0) < 0:
            raise ConversionError(f"node {n.name!r} ({n.op_type}): pads {pads} must be "
                                  f"{2 * nd} non-negative values")
        return pads
    if mode == "VALID":
        return (0,) * (2 * nd)
    begins, ends = [], []
    for size, k, s, d in zip(in_shape, kernel, strides, dilations):
        out = -(-size // s)  # SAME: output = ceil(input / stride)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        begin, end = split_pad(total, mode)
        begins.append(begin)
        ends.append(end)
    return (*begins, *ends)


def kernel_of(b: GraphBuilder, n: OnnxNode, weight: str) -> tuple[int, ...]:
    kernel = b.type(weight).shape[2:]
    given = n.attr("kernel_shape")
    if given is not None and tuple(given) != kernel:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): kernel_shape {tuple(given)} "
                              f"does not match the weight's spatial shape {kernel}")
    return kernel


def conv_inputs(n: OnnxNode) -> list[str]:
    """x, w and the bias only when it is given."""
    return [n.inputs[0], n.inputs[1], *([n.input(2)] if n.input(2) else [])]


def conv_attrs(b: GraphBuilder, n: OnnxNode, x: str, w: str) -> dict[str, object]:
    """The `conv` op's attributes for a Conv-like node (Conv, ConvInteger, QLinearConv)."""
    in_shape = b.type(x).shape[2:]
    nd = len(in_shape)
    kernel = kernel_of(b, n, w)
    strides = spatial_ints(n, "strides", nd, 1)
    dilations = spatial_ints(n, "dilations", nd, 1)
    return {
        "strides": strides, "dilations": dilations, "group": int(n.attr("group", 1)),
        "pads": resolve_pads(n, in_shape, kernel, strides, dilations),
    }


@converter("Conv")
def conv(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = conv_attrs(b, n, n.inputs[0], n.inputs[1])
    b.emit("conv", conv_inputs(n), attrs, outputs=n.outputs, name=n.name)


@converter("ConvTranspose")
def conv_transpose(b: GraphBuilder, n: OnnxNode) -> None:
    """Pads come from `pads`, or from the requested output size (`output_shape`, or input *
    stride for SAME auto_pad) as the spec's total_padding split; an output larger than the
    kernel can reach grows output_padding instead (those positions hold the bias only)."""
    x, w = n.inputs[0], n.inputs[1]
    in_shape = b.type(x).shape[2:]
    nd = len(in_shape)
    kernel = kernel_of(b, n, w)
    strides = spatial_ints(n, "strides", nd, 1)
    dilations = spatial_ints(n, "dilations", nd, 1)
    extra = list(spatial_ints(n, "output_padding", nd, 0))
    mode = auto_pad(n)
    target = n.attr("output_shape")
    if target is not None:
        target = tuple(int(v) for v in target)[-nd:]
    elif mode in ("SAME_UPPER", "SAME_LOWER"):
        target = tuple(size * s for size, s in zip(in_shape, strides))
    if target is None:
        pads = resolve_pads(n, in_shape, kernel, strides, dilations)
    else:
        begins, ends = [], []
        for i in range(nd):
            total = (strides[i] * (in_shape[i] - 1) + extra[i] + (kernel[i] - 1) * dilations[i]
                     + 1 - target[i])
            if total < 0:
                extra[i] -= total
                total = 0
            begin, end = split_pad(total, "SAME_UPPER" if mode == "SAME_UPPER" else "SAME_LOWER")
            begins.append(begin)
            ends.append(end)
        pads = (*begins, *ends)
    attrs = {"strides": strides, "dilations": dilations, "group": int(n.attr("group", 1)),
             "pads": pads, "output_padding": tuple(extra)}
    b.emit("conv_transpose", conv_inputs(n), attrs, outputs=n.outputs, name=n.name)


@converter("Col2Im")
def col2im(b: GraphBuilder, n: OnnxNode) -> None:
    image = tuple(int(v) for v in b.require_const(n.inputs[1], "Col2Im image_shape", n.name))
    block = tuple(int(v) for v in b.require_const(n.inputs[2], "Col2Im block_shape", n.name))
    nd = len(image)
    attrs = {"image": image, "block": block, "strides": spatial_ints(n, "strides", nd, 1),
             "dilations": spatial_ints(n, "dilations", nd, 1),
             "pads": tuple(int(p) for p in (n.attr("pads") or (0,) * (2 * nd)))}
    b.emit("col2im", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("DeformConv")
def deform_conv(b: GraphBuilder, n: OnnxNode) -> None:
    """An omitted bias before a given mask becomes zeros (the op's inputs are positional)."""
    x, w, offset = n.inputs[:3]
    inputs = [x, w, offset]
    if n.input(3) or n.input(4):
        wt = b.type(w)
        inputs.append(n.input(3) or b.add_constant(np.zeros(wt.shape[0], wt.dtype)))
    if n.input(4):
        inputs.append(n.input(4))
    attrs = {"strides": spatial_ints(n, "strides", 2, 1),
             "dilations": spatial_ints(n, "dilations", 2, 1),
             "pads": tuple(int(p) for p in (n.attr("pads") or (0,) * 4)),
             "group": int(n.attr("group", 1)), "offset_group": int(n.attr("offset_group", 1))}
    b.emit("deform_conv", inputs, attrs, outputs=n.outputs, name=n.name)

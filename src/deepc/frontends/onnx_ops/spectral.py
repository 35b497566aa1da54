"""ONNX DFT and STFT: the signal axis (an attribute before opset 20, an input from it) and the
transform length resolved to attributes of the `dft` op; STFT as frames, window and a `dft`."""

from __future__ import annotations

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axis


def _scalar(b: GraphBuilder, n: OnnxNode, i: int, what: str) -> int | None:
    name = n.input(i)
    if not name:
        return None
    return int(np.asarray(b.require_const(name, f"DFT {what}", n.name)).reshape(-1)[0])


@converter("DFT")
def dft(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    axis = _scalar(b, n, 2, "axis") if n.opset >= 20 else None
    if axis is None:
        axis = int(n.attr("axis", -2 if n.opset >= 20 else 1))
    axis = normalize_axis(axis, x.rank)
    inverse, onesided = int(n.attr("inverse", 0)), int(n.attr("onesided", 0))
    length = _scalar(b, n, 1, "dft_length")
    if length is None:
        length = 2 * (x.shape[axis] - 1) if inverse and onesided else x.shape[axis]
    attrs = {"axis": axis, "length": length, "inverse": inverse, "onesided": onesided}
    b.emit("dft", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("STFT")
def stft(b: GraphBuilder, n: OnnxNode) -> None:
    """Frames gathered from the signal ([batch, frames, frame_length, 1 or 2]), times the
    window, then a `dft` along the frame axis (one-sided by default)."""
    signal = n.inputs[0]
    size = b.type(signal).shape[1]
    step = _scalar(b, n, 1, "frame_step")
    window = n.input(2)
    length = _scalar(b, n, 3, "frame_length")
    if length is None:
        length = b.type(window).shape[0] if window else size
    if step is None or step < 1:
        raise ValueError(f"frame_step {step} must be a positive constant")
    frames = (size - length) // step + 1
    starts = np.arange(frames, dtype=np.int64)[:, None] * step
    index = b.add_constant(starts + np.arange(length, dtype=np.int64))
    x = b.emit1("gather", [signal, index], {"axis": 1}, name=n.name)
    if window:
        shaped = b.emit1("reshape", [window], {"shape": (1, 1, length, 1)}, name=n.name)
        x = b.emit1("mul", [x, b.emit1("cast", [shaped], {"to": b.type(x).dtype},
                                       name=n.name)], name=n.name)
    attrs = {"axis": 2, "length": length, "inverse": 0, "onesided": int(n.attr("onesided", 1))}
    b.emit("dft", [x], attrs, outputs=n.outputs, name=n.name)

"""ONNX shape and data-movement ops to reshape, transpose, broadcast_to, slice, pad and kin."""

from __future__ import annotations

from math import prod

import numpy as np

from deepc.errors import ConversionError, ShapeError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import broadcast_shape


def const_ints(b: GraphBuilder, name: str, what: str, n: OnnxNode) -> list[int]:
    """A constant input as a list of Python ints (must be known at compile time)."""
    return [int(v) for v in np.asarray(b.require_const(name, what, n.name)).reshape(-1)]


def axis_of(axis: int, rank: int, n: OnnxNode) -> int:
    if not -rank <= axis < rank:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): axis {axis} is out of range "
                              f"for rank {rank}")
    return axis % rank


def axes_arg(b: GraphBuilder, n: OnnxNode, input_index: int, since: int) -> list[int] | None:
    """`axes`: an attribute before opset `since`, an optional constant input from it on."""
    if n.opset < since:
        axes = n.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    name = n.input(input_index)
    return const_ints(b, name, "axes", n) if name else None


def emit_reshape(b: GraphBuilder, n: OnnxNode, shape: list[int] | tuple[int, ...]) -> None:
    b.emit("reshape", n.inputs[:1], {"shape": tuple(shape)}, outputs=n.outputs[:1],
           name=n.name)


@converter("Reshape")
def reshape(b: GraphBuilder, n: OnnxNode) -> None:
    """0 copies the input dimension (unless allowzero, opset 14), -1 takes what remains."""
    x = b.type(n.inputs[0])
    shape = const_ints(b, n.inputs[1], "the target shape", n)
    if not n.attr("allowzero", 0):
        shape = [x.shape[i] if d == 0 and i < x.rank else d for i, d in enumerate(shape)]
    if shape.count(-1) > 1:
        raise ConversionError(f"node {n.name!r} (Reshape): more than one -1 in {shape}")
    if -1 in shape:
        known = prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ConversionError(f"node {n.name!r} (Reshape): cannot reshape {x} to {shape}")
        shape[shape.index(-1)] = x.size // known
    elif (shape and x.rank and prod(shape) != x.size and shape[0] != x.shape[0]
          and prod(shape[1:]) * x.shape[0] == x.size):
        # a target shape exported with a fixed batch (e.g. shufflenet's channel shuffle,
        # 1x2x58x28x28) under a replaced batch dimension: the batch follows the input
        shape[0] = x.shape[0]
    emit_reshape(b, n, shape)


@converter("Flatten")
def flatten(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    axis = int(n.attr("axis", 1))
    axis = x.rank if axis == x.rank else axis_of(axis, x.rank, n)
    emit_reshape(b, n, [prod(x.shape[:axis]), prod(x.shape[axis:])])


@converter("Squeeze")
def squeeze(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    axes = axes_arg(b, n, 1, since=13)
    if axes is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = {axis_of(a, x.rank, n) for a in axes}
    bad = [i for i in sorted(drop) if x.shape[i] != 1]
    if bad:
        raise ConversionError(f"node {n.name!r} (Squeeze): axes {bad} of {x} are not of size 1")
    emit_reshape(b, n, [d for i, d in enumerate(x.shape) if i not in drop])


@converter("Unsqueeze")
def unsqueeze(b: GraphBuilder, n: OnnxNode) -> None:
    x = b.type(n.inputs[0])
    axes = axes_arg(b, n, 1, since=13)
    if axes is None:
        raise ConversionError(f"node {n.name!r} (Unsqueeze): axes are missing")
    rank = x.rank + len(axes)
    new = {axis_of(a, rank, n) for a in axes}
    if len(new) != len(axes):
        raise ConversionError(f"node {n.name!r} (Unsqueeze): repeated axes {axes}")
    dims = iter(x.shape)
    emit_reshape(b, n, [1 if i in new else next(dims) for i in range(rank)])


@converter("Transpose")
def transpose(b: GraphBuilder, n: OnnxNode) -> None:
    rank = b.type(n.inputs[0]).rank
    perm = n.attr("perm")
    perm = tuple(range(rank))[::-1] if perm is None else tuple(axis_of(p, rank, n) for p in perm)
    b.emit("transpose", n.inputs[:1], {"perm": perm}, outputs=n.outputs, name=n.name)


@converter("Expand")
def expand(b: GraphBuilder, n: OnnxNode) -> None:
    """Expand broadcasts both ways: a 1 in `shape` keeps the input's dimension."""
    x = b.type(n.inputs[0])
    shape = const_ints(b, n.inputs[1], "the target shape", n)
    try:
        out = broadcast_shape(x.shape, shape)
    except ValueError:
        raise ShapeError(f"node {n.name!r} (Expand): {x} does not broadcast with shape "
                         f"{tuple(shape)}") from None
    b.emit("broadcast_to", n.inputs[:1], {"shape": out}, outputs=n.outputs, name=n.name)


@converter("Tile")
def tile(b: GraphBuilder, n: OnnxNode) -> None:
    repeats = const_ints(b, n.inputs[1], "repeats", n)
    b.emit("tile", n.inputs[:1], {"repeats": tuple(repeats)}, outputs=n.outputs, name=n.name)


@converter("Concat")
def concat(b: GraphBuilder, n: OnnxNode) -> None:
    rank = b.type(n.inputs[0]).rank
    b.emit("concat", n.inputs, {"axis": axis_of(int(n.attr("axis", 0)), rank, n)},
           outputs=n.outputs, name=n.name)


@converter("Split")
def split(b: GraphBuilder, n: OnnxNode) -> None:
    """Sizes: the `split` attribute (< 13) or input (>= 13), else `num_outputs` (>= 18) or the
    number of outputs, in chunks of ceil(dim / count) with a smaller last one."""
    x = b.type(n.inputs[0])
    axis = axis_of(int(n.attr("axis", 0)), x.rank, n)
    if n.opset < 13:
        sizes = n.attr("split")
        sizes = None if sizes is None else [int(s) for s in sizes]
    else:
        sizes = const_ints(b, n.input(1), "split sizes", n) if n.input(1) else None
    if sizes is None:
        count, dim = int(n.attr("num_outputs", len(n.outputs))), x.shape[axis]
        chunk = -(-dim // count)
        sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
        if sizes[-1] < 0:
            raise ConversionError(f"node {n.name!r} (Split): dimension {dim} cannot be split "
                                  f"into {count} parts")
    if len(sizes) != len(n.outputs):
        raise ConversionError(f"node {n.name!r} (Split): {len(sizes)} sizes for "
                              f"{len(n.outputs)} outputs")
    b.emit("split", n.inputs[:1], {"axis": axis, "sizes": tuple(sizes)}, outputs=n.outputs,
           name=n.name)


def normalize_slice(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX's start/end (negative from the back, out of range clamped) to `slice`'s form."""
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    if -((start - end) // step) <= 0:
        return 0, 0
    return start, end


@converter("Slice")
def slice_(b: GraphBuilder, n: OnnxNode) -> None:
    """starts/ends/axes are attributes before opset 10, inputs (with steps) after."""
    x = b.type(n.inputs[0])
    if n.opset < 10:
        starts, ends = list(n.attr("starts")), list(n.attr("ends"))
        axes, steps = n.attr("axes"), None
    else:
        starts = const_ints(b, n.inputs[1], "starts", n)
        ends = const_ints(b, n.inputs[2], "ends", n)
        axes = const_ints(b, n.input(3), "axes", n) if n.input(3) else None
        steps = const_ints(b, n.input(4), "steps", n) if n.input(4) else None
    axes = list(range(len(starts))) if axes is None else [axis_of(a, x.rank, n) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if not len(axes) == len(starts) == len(ends) == len(steps) or len(set(axes)) != len(axes):
        raise ConversionError(f"node {n.name!r} (Slice): starts, ends, axes and steps must "
                              "have equal lengths and distinct axes")
    if 0 in steps:
        raise ConversionError(f"node {n.name!r} (Slice): a step is 0")
    spec = sorted((a, *normalize_slice(x.shape[a], int(s), int(e), int(st)), int(st))
                  for a, s, e, st in zip(axes, starts, ends, steps))
    attrs = {key: tuple(row[i] for row in spec)
             for i, key in enumerate(("axes", "starts", "ends", "steps"))}
    b.emit("slice", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


def _python_scalar(value: np.ndarray) -> int | float | bool:
    return np.asarray(value).reshape(-1)[0].item()


@converter("Pad")
def pad(b: GraphBuilder, n: OnnxNode) -> None:
    """pads/value are attributes before opset 11, inputs after; `axes` input from opset 18."""
    x = b.type(n.inputs[0])
    mode = str(n.attr("mode", "constant"))
    if n.opset < 11:
        pads, value = [int(p) for p in n.attr("pads")], n.attr("value", 0.0)
    else:
        pads = const_ints(b, n.inputs[1], "pads", n)
        value = (_python_scalar(b.require_const(n.input(2), "the pad value", n.name))
                 if n.input(2) else 0)
        axes = const_ints(b, n.input(3), "axes", n) if n.input(3) else None
        if axes is not None:
            full = [0] * (2 * x.rank)
            for i, a in enumerate(axes):
                a = axis_of(a, x.rank, n)
                full[a], full[a + x.rank] = pads[i], pads[i + len(axes)]
            pads = full
    if x.dtype == "bool":
        value = bool(value)
    elif x.dtype != "string":
        value = float(value) if x.dtype.startswith(("float", "bfloat")) else int(value)
    b.emit("pad", n.inputs[:1], {"pads": tuple(pads), "mode": mode, "value": value},
           outputs=n.outputs, name=n.name)


@converter("DepthToSpace")
def depth_to_space(b: GraphBuilder, n: OnnxNode) -> None:
    attrs = {"blocksize": int(n.attr("blocksize")), "mode": str(n.attr("mode", "DCR"))}
    b.emit("depth_to_space", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)


@converter("SpaceToDepth")
def space_to_depth(b: GraphBuilder, n: OnnxNode) -> None:
    """`mode` arrived in opset 28; before it the order was DCR."""
    attrs = {"blocksize": int(n.attr("blocksize")), "mode": str(n.attr("mode", "DCR"))}
    b.emit("space_to_depth", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)

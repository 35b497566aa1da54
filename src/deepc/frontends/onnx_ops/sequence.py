"""ONNX sequence ops resolved at import: a sequence is a list of tensor names known while
converting (`GraphBuilder.sequences`), so positions must be compile-time values (a model
input holding one is specialised by the caller, as for shapes) and no sequence may cross
the model's boundary; what reaches the graph is plain tensor ops (Identity, Concat, Split)."""

from __future__ import annotations

import numpy as np

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.common import normalize_axis


def _seq(b: GraphBuilder, n: OnnxNode, name: str) -> list[str]:
    if name not in b.sequences:
        raise ConversionError(f"node {n.name!r} ({n.op_type}): {name!r} is not a sequence "
                              "built in the model (sequence inputs are not supported)")
    return b.sequences[name]


def _position(b: GraphBuilder, n: OnnxNode, i: int, length: int, default: int) -> int:
    """A position input (negative counts from the end), or `default` when omitted."""
    if not n.input(i):
        return default
    pos = int(np.asarray(b.require_const(n.input(i), f"{n.op_type} position", n.name))
              .reshape(-1)[0])
    return pos + length if pos < 0 else pos


@converter("SequenceEmpty")
def sequence_empty(b: GraphBuilder, n: OnnxNode) -> None:
    b.sequences[n.outputs[0]] = []


@converter("SequenceConstruct")
def sequence_construct(b: GraphBuilder, n: OnnxNode) -> None:
    b.sequences[n.outputs[0]] = list(n.inputs)


@converter("SequenceInsert")
def sequence_insert(b: GraphBuilder, n: OnnxNode) -> None:
    items = list(_seq(b, n, n.inputs[0]))
    items.insert(_position(b, n, 2, len(items), len(items)), n.inputs[1])
    b.sequences[n.outputs[0]] = items


@converter("SequenceErase")
def sequence_erase(b: GraphBuilder, n: OnnxNode) -> None:
    items = list(_seq(b, n, n.inputs[0]))
    del items[_position(b, n, 1, len(items), len(items) - 1)]
    b.sequences[n.outputs[0]] = items


@converter("SequenceAt")
def sequence_at(b: GraphBuilder, n: OnnxNode) -> None:
    items = _seq(b, n, n.inputs[0])
    b.emit("identity", [items[_position(b, n, 1, len(items), 0)]], outputs=n.outputs,
           name=n.name)


@converter("SequenceLength")
def sequence_length(b: GraphBuilder, n: OnnxNode) -> None:
    count = b.add_constant(np.array(len(_seq(b, n, n.inputs[0])), np.int64))
    b.emit("identity", [count], outputs=n.outputs, name=n.name, fold=False)


@converter("ConcatFromSequence")
def concat_from_sequence(b: GraphBuilder, n: OnnxNode) -> None:
    items = _seq(b, n, n.inputs[0])
    rank = b.type(items[0]).rank
    if int(n.attr("new_axis", 0)):
        axis = normalize_axis(int(n.attr("axis")), rank + 1)
        shape = list(b.type(items[0]).shape)
        shape.insert(axis, 1)
        items = [b.emit1("reshape", [t], {"shape": tuple(shape)}, name=n.name) for t in items]
    else:
        axis = normalize_axis(int(n.attr("axis")), rank)
    b.emit("concat", items, {"axis": axis}, outputs=n.outputs, name=n.name)


@converter("SplitToSequence")
def split_to_sequence(b: GraphBuilder, n: OnnxNode) -> None:
    """Sizes from `split` (a scalar: equal chunks and a smaller last one; a vector: those
    sizes), else pieces of 1, squeezed unless keepdims."""
    x = b.type(n.inputs[0])
    axis = normalize_axis(int(n.attr("axis", 0)), x.rank)
    dim = x.shape[axis]
    split = None
    if n.input(1):
        split = np.asarray(b.require_const(n.input(1), "SplitToSequence split", n.name))
    if split is None:
        sizes = [1] * dim
    elif split.ndim == 0:
        chunk = int(split)
        sizes = [chunk] * (dim // chunk) + ([dim % chunk] if dim % chunk else [])
    else:
        sizes = [int(s) for s in split]
    pieces = list(b.emit("split", n.inputs[:1], {"axis": axis, "sizes": tuple(sizes)},
                         num_outputs=len(sizes), name=n.name))
    if split is None and not int(n.attr("keepdims", 1)):
        shape = tuple(d for k, d in enumerate(x.shape) if k != axis)
        pieces = [b.emit1("reshape", [p], {"shape": shape}, name=n.name) for p in pieces]
    b.sequences[n.outputs[0]] = pieces


# -- optionals: one holding a tensor is that tensor; an empty one is an absent input ----------
@converter("Optional")
def optional(b: GraphBuilder, n: OnnxNode) -> None:
    if not n.input(0):
        raise ConversionError(f"node {n.name!r} (Optional): an empty optional value is not "
                              "supported (only optionals holding a tensor)")
    b.emit("identity", [n.input(0)], outputs=n.outputs, name=n.name)


@converter("OptionalHasElement")
def optional_has_element(b: GraphBuilder, n: OnnxNode) -> None:
    """An omitted input is the empty optional; a tensor input always holds an element."""
    b.add_constant(np.array(bool(n.input(0))), name=n.outputs[0])


@converter("OptionalGetElement")
def optional_get_element(b: GraphBuilder, n: OnnxNode) -> None:
    if not n.input(0):
        raise ConversionError(f"node {n.name!r} (OptionalGetElement): the optional is empty")
    b.emit("identity", [n.input(0)], outputs=n.outputs, name=n.name)

"""ONNX validation: a parsed model checked for names, topology and types before conversion.

Everything here is the model's fault, so it raises ModelError (exit 2) naming what is wrong,
before any converter or pass sees a graph it could misread. The walk is iterative: a chain
of 20,000 nodes is as easy as one of ten.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Iterable
from math import prod
from typing import Any

import onnx
from onnx import helper

from deepc.errors import DeepcNotice, FixedDimReplaced, ModelError, ShapeError
from deepc.frontends.onnx_types import check_types, describe, node_schema
from deepc.ir.graph import Graph

# the largest tensor deepc accepts (elements; 8 GiB of float32): beyond it a dimension is
# almost always corrupted or mis-set, and the kernels' index arithmetic is untested there
MAX_ELEMENTS = 2**31 - 1
REFUSED_DTYPES = {"object": "string", "complex64": "complex", "complex128": "complex"}


def validate(model: onnx.ModelProto, opset: int) -> None:
    """Check the model's versions, then its graph's names, schemas (at the default domain's
    `opset`), types and topology."""
    newest_ir, newest_opset = onnx.IR_VERSION, onnx.defs.onnx_opset_version()
    if model.ir_version > newest_ir:
        raise ModelError(f"IR version {model.ir_version} is newer than any this ONNX knows "
                         f"({newest_ir}) — the file is corrupted, or upgrade onnx")
    if opset > newest_opset:
        raise ModelError(f"opset {opset} is newer than any this ONNX knows ({newest_opset}) — "
                         "the file is corrupted, or export with an older opset")
    validate_graph(model.graph, opset)


def validate_graph(graph: onnx.GraphProto, opset: int) -> None:
    """Check the graph's names, node arities and types; a cycle is reported too."""
    _check_text(graph)
    for node in graph.node:
        _check_schema(node, opset)
    inits = _unique((t.name for t in graph.initializer), "initializer")
    for t in graph.initializer:
        _check_initializer(t)
    inputs = _unique((vi.name for vi in graph.input), "graph input")
    defined = set(inits) | set(inputs)
    for vi in graph.input:
        if vi.name not in inits:
            element_dtype(vi)
    for node, out in ((n, o) for n in graph.node for o in n.output if o):
        if out in defined:
            raise ModelError(f"{describe(node)} writes {out!r}, which is already defined (by "
                             "another node, a graph input or an initializer): names must be "
                             "unique — the model is malformed; re-export it")
        defined.add(out)
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                raise ModelError(f"{describe(node)} reads {name!r}, which no node, graph input "
                                 "or initializer defines — the model is malformed")
    outputs = _unique((vi.name for vi in graph.output), "graph output")
    for name in outputs:
        if name not in defined:
            raise ModelError(f"graph output {name!r} is produced by no node, input or "
                             "initializer — the model is malformed; re-export it")
    for vi in graph.output:  # UNDEFINED (0) leaves the type to the graph
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            _dtype(vi.type.tensor_type.elem_type, f"output {vi.name!r}")
    check_types(graph, topological_nodes(graph), opset)


def _check_schema(node: onnx.NodeProto, opset: int) -> None:
    """Input and output counts and attribute names against the ONNX schema, as onnxruntime
    checks them (ops ONNX does not know are left to the list of unsupported operators)."""
    schema = node_schema(node, opset)
    if schema is None:
        return  # not an ONNX op, or not at this opset: the converters say what to do
    counts = (("inputs", len(node.input), schema.min_input, schema.max_input),
              ("outputs", len(node.output), schema.min_output, schema.max_output))
    for what, have, low, high in counts:
        if not low <= have <= high:
            want = f"{low}" if low == high else f"{low} to {high}"
            raise ModelError(f"{describe(node)} has {have} {what}; {node.op_type} takes {want} at "
                             f"opset {opset} — the model is malformed")
    unknown = sorted({a.name for a in node.attribute} - set(schema.attributes))
    if unknown:
        raise ModelError(f"{describe(node)} has attribute{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}, which {node.op_type} does not take "
                         f"at opset {opset} — the model is malformed")


def tensor_type(vi: onnx.ValueInfoProto) -> onnx.TypeProto.Tensor | None:
    """A graph input's tensor type, also inside an optional (fed, it is that tensor)."""
    t = vi.type
    if t.HasField("optional_type"):
        t = t.optional_type.elem_type
    return t.tensor_type if t.HasField("tensor_type") else None


def element_dtype(vi: onnx.ValueInfoProto) -> Any:
    """The numpy dtype of a graph input; non-tensor, string and unknown types are refused."""
    tt = tensor_type(vi)
    if tt is None or tt.elem_type == 0:
        raise ModelError(f"input {vi.name!r}: only tensor inputs with an element type are "
                         "supported (sequences, maps and untyped inputs are not)")
    return _dtype(tt.elem_type, f"input {vi.name!r}")


def input_shape(vi: onnx.ValueInfoProto, given: tuple[int, ...] | None,
                default: int) -> tuple[int, ...]:
    """The shape an input is compiled for: the model's dims, with `given` (--input-shape)
    filling symbolic ones. Replacing a fixed dim warns FixedDimReplaced (the CLI makes it an
    error); symbolic dims left at `default` warn a DeepcNotice."""
    tt = tensor_type(vi) or vi.type.tensor_type
    dims = list(tt.shape.dim)
    fixed = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    if given is None:
        loose = [d.dim_param or "?" for d, f in zip(dims, fixed) if f is None]
        if loose:
            warnings.warn(DeepcNotice(
                f"input {vi.name!r}: symbolic dimension{'s' if len(loose) > 1 else ''} "
                f"{', '.join(loose)} set to {default} — give --input-shape "
                f"{vi.name}:{'x'.join(str(f or default) for f in fixed)} with other values "
                "to change it"), stacklevel=2)
        shape = tuple(f or default for f in fixed)
    else:
        shape = tuple(given)
        if tt.HasField("shape") and len(given) != len(dims):
            raise ShapeError(f"--input-shape {vi.name}: gives {len(given)} dimensions, the "
                             f"model's input has {len(dims)} ({_dims_text(dims)})")
        if any(d < 0 for d in given):
            raise ShapeError(f"--input-shape {vi.name}: dimensions cannot be negative, got "
                             f"{'x'.join(map(str, given))}")
        replaced = [(k, f, g) for k, (f, g) in enumerate(zip(fixed, given))
                    if f is not None and f != g]
        if replaced:
            what = ", ".join(f"dimension {k} is fixed at {f}, not {g}" for k, f, g in replaced)
            warnings.warn(FixedDimReplaced(
                f"input {vi.name!r} ({_dims_text(dims)}): {what} — --input-shape sets symbolic "
                "dimensions only; re-export the model with a symbolic dimension to change it"),
                stacklevel=2)
    if prod(shape) > MAX_ELEMENTS:
        raise ShapeError(f"input {vi.name!r}: shape {'x'.join(map(str, shape))} has "
                         f"{prod(shape):,} elements, more than deepc addresses "
                         f"({MAX_ELEMENTS:,}) — give a smaller --input-shape")
    return shape


def check_sizes(graph: Graph) -> Graph:
    """Every value of the converted graph within MAX_ELEMENTS: an Expand or ConstantOfShape
    to 2**40 elements is the model's fault, found here rather than as a failed allocation."""
    for name, ty in graph.types.items():
        if ty.size > MAX_ELEMENTS:
            made = next((n for n in graph.nodes if name in n.outputs), None)
            by = f" (made by {made.op} {made.name!r})" if made is not None else ""
            raise ShapeError(f"value {name!r}{by} has shape {'x'.join(map(str, ty.shape))}: "
                             f"{ty.size:,} elements, more than deepc addresses "
                             f"({MAX_ELEMENTS:,})")
    return graph


def topological_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The nodes in an order where each comes after its producers (the file's own order
    where it is one); a cycle is an error naming its nodes."""
    nodes = list(graph.node)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    needs: list[set[int]] = [{producer[i] for i in _reads(n) if i in producer} for n in nodes]
    users: list[list[int]] = [[] for _ in nodes]
    for k, deps in enumerate(needs):
        for d in deps:
            users[d].append(k)
    waiting = [len(d) for d in needs]
    ready = [k for k, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) < len(nodes):
        stuck = [describe(nodes[k]) for k in range(len(nodes)) if waiting[k]]
        more = f" and {len(stuck) - 3} more" if len(stuck) > 3 else ""
        raise ModelError(f"the graph has a cycle through {', '.join(stuck[:3])}{more} — an "
                         "ONNX graph must be acyclic; the model is malformed")
    return [nodes[k] for k in order]


def _reads(node: onnx.NodeProto) -> Iterable[str]:
    """The values a node reads: its inputs and those its subgraphs take from outer scope."""
    yield from node.input
    stack = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    stack += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
    while stack:
        sub = stack.pop()
        for n in sub.node:
            yield from n.input
            stack += [a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]


def _check_text(graph: onnx.GraphProto) -> None:
    """Names and op types must be text: a corrupted file can carry bytes that are not UTF-8."""
    if not isinstance(graph.name, str):
        raise ModelError(f"the graph's name {graph.name!r} is not valid text — the file is "
                         "corrupted; re-export it")
    for k, node in enumerate(graph.node):
        for field in (node.op_type, node.domain, node.name, *node.input, *node.output,
                      *(a.name for a in node.attribute)):
            if not isinstance(field, str):
                raise ModelError(f"node #{k}: {field!r} is not valid text (op type, domain or "
                                 "value name) — the file is corrupted; re-export it")
        if not node.op_type:
            raise ModelError(f"node #{k} ({node.name!r}) has no op type — the model is "
                             "malformed")
    for kind, items in (("input", graph.input), ("output", graph.output),
                        ("initializer", graph.initializer)):
        for item in items:
            if not isinstance(item.name, str) or not item.name:
                raise ModelError(f"a graph {kind} has an empty or corrupted name "
                                 f"({item.name!r}) — the model is malformed")


def _unique(names: Iterable[str], what: str) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        if name in seen:
            raise ModelError(f"{what} {name!r} is listed twice — names must be unique; the "
                             "model is malformed")
        seen.add(name)
        out.append(name)
    return out


def _check_initializer(t: onnx.TensorProto) -> None:
    where = f"initializer {t.name!r}"
    if t.data_location == onnx.TensorProto.EXTERNAL:
        return
    dtype = _dtype(t.data_type, where)
    if any(d < 0 for d in t.dims):
        raise ModelError(f"{where}: negative dimension in {list(t.dims)} — the model is "
                         "corrupted")
    count = prod(t.dims)
    if count > MAX_ELEMENTS:
        raise ModelError(f"{where}: {count:,} elements, more than deepc addresses")
    if t.HasField("raw_data"):
        have, want = len(t.raw_data), count * dtype.itemsize
    else:
        field = helper.tensor_dtype_to_field(t.data_type)
        have, want = len(getattr(t, field)), count  # one element per field entry
    if have != want:
        raise ModelError(f"{where}: holds {have} {'bytes' if t.HasField('raw_data') else 'values'}"
                         f" for shape {list(t.dims)} ({want} expected) — the file is truncated "
                         "or corrupted")


def _dtype(elem_type: int, where: str) -> Any:
    try:
        dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    except (KeyError, ValueError, TypeError):
        raise ModelError(f"{where}: unknown element type {elem_type} — the model is "
                         "corrupted or from a newer ONNX") from None
    kind = REFUSED_DTYPES.get(dtype.name)
    if kind is not None:
        raise ModelError(f"{where}: {kind} tensors are not supported — deepc compiles numeric "
                         "and bool tensors; do the string handling outside the model")
    return dtype


def _dims_text(dims: Any) -> str:
    return "x".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                    for d in dims) or "scalar"

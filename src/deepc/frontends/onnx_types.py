"""ONNX type check: element types followed through the graph against each op's schema.

The type constraints onnxruntime enforces on load (Tanh takes floats; MatMul's two inputs
share one type), checked on the types known from the graph inputs and initializers and
carried forward where the schema ties an output to an input's type. A value whose type
cannot be told that way is left to the converters' own rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
import onnx.defs

from deepc.errors import ModelError


def type_name(elem_type: int) -> str:
    """ONNX's spelling of an element type in schemas: tensor(float), tensor(int64), ..."""
    return f"tensor({onnx.TensorProto.DataType.Name(elem_type).lower()})"


def check_types(graph: onnx.GraphProto, nodes: Sequence[onnx.NodeProto], opset: int) -> None:
    """Raise ModelError at the first node whose inputs break its schema's type constraints,
    or at an output declared with another type than it gets; `nodes` in topological order."""
    known = {vi.name: type_name(vi.type.tensor_type.elem_type) for vi in graph.input
             if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type}
    known.update({t.name: type_name(t.data_type) for t in graph.initializer})
    for node in nodes:
        schema = node_schema(node, opset)
        if schema is None:
            continue
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        bound: dict[str, tuple[str, str]] = {}  # constraint -> (type, the input that set it)
        formals = schema.inputs
        for i, name in enumerate(node.input):
            if not name or name not in known or not formals:
                continue
            param = formals[min(i, len(formals) - 1)].type_str
            have = known[name]
            if have not in allowed.get(param, {param}):
                raise ModelError(f"{describe(node)}: input {name!r} is {have}; {node.op_type} "
                                 f"takes {', '.join(sorted(allowed.get(param, {param})))} "
                                 "there — the model is malformed")
            first = bound.setdefault(param, (have, name))
            if param in allowed and first[0] != have:
                raise ModelError(f"{describe(node)}: inputs {first[1]!r} ({first[0]}) and "
                                 f"{name!r} ({have}) must have one type — the model is "
                                 "malformed")
        for k, out in enumerate(node.output):
            if out and k < len(schema.outputs):
                param = schema.outputs[min(k, len(schema.outputs) - 1)].type_str
                if param in bound:
                    known[out] = bound[param][0]
                elif param not in allowed:  # a fixed type such as tensor(int64)
                    known[out] = param
    for vi in graph.output:
        declared = vi.type.tensor_type.elem_type if vi.type.HasField("tensor_type") else 0
        if declared and vi.name in known and known[vi.name] != type_name(declared):
            raise ModelError(f"output {vi.name!r} is declared {type_name(declared)} but "
                             f"computed as {known[vi.name]} — the model is malformed")


def node_schema(node: onnx.NodeProto, opset: int) -> onnx.defs.OpSchema | None:
    """The schema in force at `opset` for a default-domain op ONNX knows, else None."""
    if node.domain not in ("", "ai.onnx") or not onnx.defs.has(node.op_type):
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def describe(node: onnx.NodeProto) -> str:
    """How messages name a node: by its name, or by its op where it has none."""
    return (f"node {node.name!r} ({node.op_type})" if node.name
            else f"an unnamed {node.op_type} node")

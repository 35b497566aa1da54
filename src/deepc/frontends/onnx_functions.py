"""Expansion of ONNX function ops (ops the standard defines as a body of other ops).

An op deepc has no converter for, but which the ONNX schema defines as a function for the
model's opset (Swish, RMSNormalization, the losses, ...), is replaced by that body, its
values renamed under the node's name and its attribute references bound to the node's
attributes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import onnx
import onnx.defs
from onnx import helper

from deepc.errors import NeedsConstantError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_control import rename_captured


def _schema(node: onnx.NodeProto, opset: int) -> onnx.defs.OpSchema | None:
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        return onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def is_function_op(node: onnx.NodeProto, opset: int) -> bool:
    schema = _schema(node, opset)
    return schema is not None and (schema.has_function or schema.has_context_dependent_function)


def _function(node: onnx.NodeProto, opset: int, b: GraphBuilder) -> onnx.FunctionProto:
    schema = _schema(node, opset)
    assert schema is not None
    if schema.has_function:
        # onnx >= 1.16 returns the body for an opset serialized (bytes), older a FunctionProto
        body = schema.get_function_with_opset_version(opset)
        if isinstance(body, bytes):
            body = onnx.FunctionProto.FromString(body) if body else None
        return body or schema.function_body
    types = []
    for name in node.input:
        tp = onnx.TypeProto()
        if name:
            ty = b.type(name)
            elem = helper.np_dtype_to_tensor_dtype(onnx.helper.np.dtype(ty.dtype))
            tp = helper.make_tensor_type_proto(elem, list(ty.shape))
        types.append(tp.SerializeToString())
    raw = schema.get_context_dependent_function_with_opset_version(
        opset, node.SerializeToString(), types)
    return onnx.FunctionProto.FromString(raw)


def expand(node: onnx.NodeProto, opset: int, b: GraphBuilder, index: int) -> list[onnx.NodeProto]:
    """The nodes of `node`'s function body, wired to the node's inputs and outputs."""
    fn = _function(node, opset, b)
    prefix = f"{node.name or node.op_type + str(index)}/"
    names = {formal: actual for formal, actual in zip(fn.input, node.input)}
    names.update({formal: "" for formal in list(fn.input)[len(node.input):]})
    names.update(zip(fn.output, node.output))
    attrs = {a.name: a for a in node.attribute}
    schema = _schema(node, opset)
    defaults = {k: v.default_value for k, v in schema.attributes.items()
                if v.default_value.type} if schema else {}

    def rename(value: str) -> str:
        if not value:
            return ""
        return names.setdefault(value, prefix + value)

    out = []
    for k, inner in enumerate(fn.node):
        new = onnx.NodeProto()
        new.CopyFrom(inner)
        new.name = f"{prefix}{inner.name or inner.op_type + str(k)}"
        new.input[:] = [rename(i) for i in inner.input]
        new.output[:] = [rename(o) for o in inner.output]
        del new.attribute[:]
        for a in inner.attribute:
            if a.ref_attr_name:
                src = attrs.get(a.ref_attr_name) or defaults.get(a.ref_attr_name)
                if src is None:
                    continue
                bound = onnx.AttributeProto()
                bound.CopyFrom(src)
                bound.name = a.name
                new.attribute.append(bound)
            else:
                new.attribute.append(a)
                if a.type == onnx.AttributeProto.GRAPH:
                    rename_captured(new.attribute[-1].g, names)
        out.append(new)
    return out


@contextmanager
def outer_inputs(body: Sequence[onnx.NodeProto], b: GraphBuilder) -> Iterator[None]:
    """A NeedsConstantError raised in nodes that replaced one (a function body, an unrolled
    Scan, an If branch) names a value of theirs, which the caller (the backend, specialising
    model inputs) cannot trace; name instead the first value from outside that it is
    computed from and that is not constant yet."""
    try:
        yield
    except NeedsConstantError as exc:
        producers = {o: n for n in body for o in n.output}
        stack, seen = [exc.value], set()
        while stack:
            v = stack.pop()
            if v in seen or not v:
                continue
            seen.add(v)
            if v in producers:
                stack.extend(producers[v].input)
            elif not b.is_const(v) and v != exc.value:
                raise NeedsConstantError(str(exc), v) from None
        raise


__all__ = ["expand", "is_function_op", "outer_inputs"]

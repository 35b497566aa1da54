"""ONNX frontend: an .onnx file (default-domain opset 7 and up, older upgraded) to the graph IR."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from onnx import numpy_helper

from deepc.errors import ConversionError, DeepcError, ModelLoadError, UnsupportedOpError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_control import CONTROL
from deepc.frontends.onnx_functions import expand, is_function_op, outer_inputs
from deepc.frontends.onnx_node import OnnxNode, decode_attr
from deepc.frontends.onnx_ops import CONVERTERS
from deepc.frontends.onnx_upgrade import default_opset, upgraded
from deepc.frontends.onnx_validate import (
    check_sizes,
    element_dtype,
    input_shape,
    topological_nodes,
    validate,
)
from deepc.ir.graph import Graph
from deepc.ir.types import TensorType, dtype_name

DEFAULT_DIM = 1  # symbolic dimensions not fixed by --input-shape


def read_model(path: Path) -> onnx.ModelProto:
    """Read and sanity-check an ONNX file; every failure becomes a one-line ModelLoadError."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file — check the model path")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory, not an ONNX model file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: file is empty (0 bytes) — re-export or re-download it")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelLoadError(
            f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc)[:80]}) — "
            "the file is truncated, corrupted or in another format"
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise ModelLoadError(
            f"{path}: not an ONNX model (no IR version or graph) — the file is truncated, "
            "corrupted or in another format"
        )
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise ModelLoadError(f"{path}: external weight data could not be read: {exc}") from None
    return model


def _value_type(vi: onnx.ValueInfoProto, shape: tuple[int, ...] | None) -> TensorType:
    return TensorType(input_shape(vi, shape, DEFAULT_DIM), dtype_name(element_dtype(vi)))


def _inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    if not model.functions:
        return model
    import onnx.inliner

    return onnx.inliner.inline_local_functions(model)


def convert(model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]] | None = None,
            name: str = "model") -> Graph:
    """Translate an in-memory ONNX model to the graph IR."""
    validate(model, default_opset(model))  # the model's own faults first, before inlining
    model = upgraded(_inline_functions(model))
    opset = default_opset(model)
    g = model.graph
    shapes = dict(input_shapes or {})
    b = GraphBuilder(g.name or name)
    inits = {t.name: t for t in g.initializer}
    for t in g.initializer:
        try:
            array = numpy_helper.to_array(t)
        except Exception as exc:  # external data missing, or bytes that do not fit the dims
            raise ModelLoadError(f"initializer {t.name!r} cannot be read ({exc}) — the model "
                                 "is corrupted or its external data is missing") from None
        b.add_constant(array, name=t.name)
    graph_inputs = {vi.name for vi in g.input}
    unknown = set(shapes) - graph_inputs
    if unknown:
        raise ConversionError(
            f"--input-shape names {', '.join(sorted(unknown))}, which the model has no input "
            f"called; its inputs are {', '.join(vi.name for vi in g.input if vi.name not in inits)}"
        )
    for vi in g.input:
        if vi.name in inits and vi.name not in shapes:
            continue  # an initializer listed as an input (IR < 4): a constant
        b.add_input(vi.name, _value_type(vi, shapes.get(vi.name)))

    convert_nodes(b, topological_nodes(g), opset)
    b.outputs = [finish_output(b, vi.name) for vi in g.output]
    return check_sizes(b.build())


def converter_key(proto: onnx.NodeProto) -> str:
    """The op's key in CONVERTERS: its type, prefixed by its domain outside the default one
    (`ai.onnx.ml.Binarizer`)."""
    default = proto.domain in ("", "ai.onnx")
    return proto.op_type if default else f"{proto.domain}.{proto.op_type}"


def convert_nodes(b: GraphBuilder, nodes: Any, opset: int) -> None:
    missing: dict[str, list[str]] = {}
    for i, proto in enumerate(nodes):
        key = converter_key(proto)
        if key in CONTROL or key in CONVERTERS:
            continue
        if not is_function_op(proto, opset):
            missing.setdefault(key, []).append(proto.name or f"#{i}")
    if missing:
        raise UnsupportedOpError(missing)
    for i, proto in enumerate(nodes):
        key = converter_key(proto)
        if key in CONTROL or key not in CONVERTERS:
            # control flow unrolled or resolved, or a function op's body: plain nodes
            body = CONTROL[key](proto, b, i, opset) if key in CONTROL else \
                expand(proto, opset, b, i)
            with outer_inputs(body, b):
                convert_nodes(b, body, opset)
            continue
        name = proto.name or f"{proto.op_type}_{i}"
        try:
            node = OnnxNode(proto.op_type, name, tuple(proto.input), tuple(proto.output),
                            {a.name: decode_attr(a) for a in proto.attribute}, opset)
            CONVERTERS[key](b, node)
        except DeepcError:
            raise
        except Exception as exc:  # a converter's own bug or an odd model: name the node
            raise ConversionError(
                f"node {name!r} ({proto.op_type}): cannot be translated: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for out in node.outputs:
            if out and out not in b.types and out not in b.sequences:
                raise ConversionError(f"node {node.name!r} ({node.op_type}): output {out!r} "
                                      "was not produced by its converter")


def finish_output(b: GraphBuilder, name: str) -> str:
    """Graph outputs must be node outputs; a constant or pass-through output gets a copy."""
    if name in b.sequences:
        raise ConversionError(f"output {name!r} is a sequence; only tensor outputs are supported")
    if name in b.constants or name in b.inputs:
        return b.emit("identity", [name], outputs=[f"{name}:out"], fold=False)[0]
    return name


def declared_inputs(path: str | Path) -> dict[str, tuple[int | None, ...]]:
    """The model's (non-constant) inputs as it declares them: fixed dims, None where
    symbolic. Reads the file without converting it (`deepc bench --batch` asks)."""
    g = read_model(Path(path)).graph
    inits = {t.name for t in g.initializer}
    return {vi.name: tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                           for d in vi.type.tensor_type.shape.dim)
            for vi in g.input if vi.name not in inits}


def load(path: str | Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    path = Path(path)
    return convert(read_model(path), input_shapes, name=path.stem)

"""Converters from ONNX operators to graph-IR ops, one module per op family.

A converter is `fn(builder, node)`; it translates (it never optimises) and must define every
non-empty output name of the ONNX node. Register with `@converter("OpType", ...)`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepc.frontends.builder import GraphBuilder
    from deepc.frontends.onnx_node import OnnxNode

Converter = Callable[["GraphBuilder", "OnnxNode"], None]
CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    def deco(fn: Converter) -> Converter:
        for op_type in op_types:
            if op_type in CONVERTERS:
                raise ValueError(f"two converters for ONNX op {op_type}")
            CONVERTERS[op_type] = fn
        return fn

    return deco


def direct(op_type: str, op: str, attrs: Mapping[str, tuple[str, Any]] | None = None) -> None:
    """Register a 1:1 translation; `attrs` maps deepc attr -> (ONNX attr, default)."""

    def convert(b: GraphBuilder, n: OnnxNode) -> None:
        values = {k: n.attr(src, default) for k, (src, default) in (attrs or {}).items()}
        b.emit(op, n.inputs, values, outputs=n.outputs, name=n.name)

    converter(op_type)(convert)


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

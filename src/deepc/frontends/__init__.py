"""Frontends turn a model file into the graph IR; one per file suffix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from deepc.errors import ModelLoadError
from deepc.ir.graph import Graph

Loader = Callable[..., Graph]
FRONTENDS: dict[str, str] = {".onnx": "deepc.frontends.onnx"}


def load(path: str | Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Graph:
    """Load a model file into the graph IR, choosing the frontend by the file suffix."""
    import importlib

    path = Path(path)
    module = FRONTENDS.get(path.suffix.lower())
    if module is None:
        known = ", ".join(sorted(FRONTENDS))
        raise ModelLoadError(f"{path}: no frontend for '{path.suffix}' files (known: {known})")
    return importlib.import_module(module).load(path, input_shapes=input_shapes)


def parse_input_shape(spec: str) -> tuple[str, tuple[int, ...]]:
    """Parse `NAME:1x3x224x224` (as given to --input-shape)."""
    name, sep, dims = spec.rpartition(":")
    try:
        if not sep or not name:
            raise ValueError
        shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
    except ValueError:
        raise ModelLoadError(
            f"bad --input-shape {spec!r}: expected NAME:DxDxD, e.g. input:1x3x224x224"
        ) from None
    return name, shape

"""Packaging for wasm targets: model.wasm (linked by wasm-ld), its ES-module loader and an
example page, beside the params and manifest every bundle has."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepc.backends.wasm.link import link_wasm
from deepc.compiler.packagers.common import params_of, tensor_specs, write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS
from deepc.runtime.inputs import input_bounds
from deepc.runtime.wasm_assets import (
    EXAMPLE,
    LOADER,
    WASM,
    example_page,
    loader_spec,
    render_loader,
)


@PACKAGERS.register("wasm")
def write_wasm_bundle(compiled: Any, path: Path) -> Path:
    graph = compiled.graph
    params = params_of(compiled)
    spec = loader_spec(graph.name,
                       [t.to_dict() for t in tensor_specs(compiled, graph.inputs)],
                       [t.to_dict() for t in tensor_specs(compiled, graph.outputs)],
                       compiled.plan.workspace_bytes, len(params.data), input_bounds(graph))
    files = {LOADER: render_loader(spec), EXAMPLE: example_page()}
    with tempfile.TemporaryDirectory(prefix="deepc-bundle-") as tmp:
        wasm = link_wasm(compiled.module.binary, compiled.target, Path(tmp) / "model.wasm")
        return write_model_bundle(compiled, path, library=wasm, params=params,
                                  extra={"loader": LOADER, "example": EXAMPLE},
                                  extra_files=files, library_member=WASM)

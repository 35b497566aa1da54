"""The JavaScript a wasm bundle carries and the Node driver that runs one, as text and paths.

lib/model.mjs is the loader (runtime/wasm/loader.mjs) under one line that declares the
model's SPEC (inputs, outputs, sizes) from the manifest; example/index.html is the same for
every model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parent / "wasm"
DRIVER = ASSETS / "driver.mjs"
WASM = "lib/model.wasm"
LOADER = "lib/model.mjs"
EXAMPLE = "example/index.html"


def loader_spec(name: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                workspace_bytes: int, params_bytes: int,
                input_bounds: dict[str, int]) -> dict[str, Any]:
    return {"name": name, "inputs": inputs, "outputs": outputs,
            "workspace_bytes": int(workspace_bytes), "params_bytes": int(params_bytes),
            "input_bounds": dict(input_bounds)}


def render_loader(spec: dict[str, Any]) -> str:
    """lib/model.mjs for a model: its SPEC, then the loader."""
    return f"const SPEC = {json.dumps(spec)};\n" + (ASSETS / "loader.mjs").read_text()


def example_page() -> str:
    return (ASSETS / "index.html").read_text()

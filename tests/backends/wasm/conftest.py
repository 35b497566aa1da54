"""Wasm bundles for the tests: each model compiled once per session (the tests using them are
grouped on one xdist worker); skips name the missing tool and its Debian package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import deepc
from deepc.backends.wasm.link import linker
from deepc.errors import ToolchainError
from deepc.runtime.wasm_model import node_argv
from deepc.target import load_target
from tests.conftest import shared_model


def need_toolchain() -> None:
    """Skip unless wasm-ld and node (the target's linker and runner) are installed."""
    target = load_target("wasm32-simd")
    try:
        linker(target)
        node_argv(target.to_dict())
    except ToolchainError as e:
        pytest.skip(str(e))


class WasmBundles(dict[str, Path]):
    """Shared models (or a path) compiled for wasm32-simd the first time a test asks."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        need_toolchain()
        onnx = Path(name) if name.endswith(".onnx") else shared_model(name)
        bundle = deepc.compile(onnx, "wasm32-simd").save(self.root / f"{onnx.stem}.tar")
        self[name] = bundle
        return bundle


@pytest.fixture(scope="session")
def wasm_bundles(tmp_path_factory: pytest.TempPathFactory) -> WasmBundles:
    return WasmBundles(tmp_path_factory.mktemp("wasm"))


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed — `apt-get install chromium`")

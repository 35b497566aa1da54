"""Fixtures for the runtime tests: a private cache, the host target, C sources built with cc."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepc.backends.link import RUNTIME_DIR, compile_runtime, link_shared
from deepc.target import Target, load_target

C_DIR = Path(__file__).parent / "c"


@pytest.fixture(scope="package", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Runtime objects and extracted bundles go to a temporary cache, not ~/.cache/deepc."""
    cache = tmp_path_factory.mktemp("deepc-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPC_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="package")
def host() -> Target:
    if shutil.which("cc") is None:
        pytest.skip("no host C compiler (cc): apt-get install gcc")
    return load_target("host")


def cc(*args: str | Path) -> None:
    """Run the host cc; a failure shows the compiler's message."""
    done = subprocess.run(["cc", *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def build_object(source: Path, out_dir: Path, *defines: str) -> Path:
    obj = out_dir / f"{source.stem}.o"
    cc("-std=c11", "-O2", "-fPIC", f"-I{RUNTIME_DIR}", *defines, "-c", source, "-o", obj)
    return obj


@pytest.fixture(scope="package")
def fake_model_lib(host: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/runtime/c/fake_model.c linked with the runtime into a model library."""
    out = tmp_path_factory.mktemp("fake-model")
    obj = build_object(C_DIR / "fake_model.c", out, "-DX_SIZE=1000")
    return link_shared([obj, compile_runtime(host)], host, out / "model.so")

"""OpenCL tests run on PoCL's CPU device: skipped, with the reason, where pyopencl or an
OpenCL platform is missing. Each shared model is compiled once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import deepc


def opencl_missing() -> str | None:
    """Why OpenCL cannot run here, or None."""
    try:
        import pyopencl as cl
    except ImportError:
        return "pyopencl is not installed (pip install deepc[opencl])"
    try:
        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except cl.Error:
        devices = []
    return None if devices else "no OpenCL device (apt-get install pocl-opencl-icd)"


@pytest.fixture(scope="session")
def opencl_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """A shared model's opencl-cpu bundle, compiled once per session."""
    why = opencl_missing()
    if why:
        pytest.skip(why)
    made: dict[Path, Path] = {}

    def bundle(model: Path) -> Path:
        if model not in made:
            out = tmp_path_factory.mktemp("opencl") / f"{model.stem}.tar"
            made[model] = deepc.compile(model, "opencl-cpu").save(out)
        return made[model]

    return bundle

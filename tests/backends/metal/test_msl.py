"""The Metal backend: every shared model's MSL compiles as C++17 with clang against the shim
header in shim/ (a syntax and type check — not Apple's compiler) and runs on the CPU with
threadgroups emulated (threadgroups.py) matching onnxruntime; the bundle carries the source,
the plan, a build script and a host program, and says what was not checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

import deepc
from deepc.frontends import load
from deepc.runtime.inputs import random_inputs
from tests.backends.metal.threadgroups import run_bundle
from tests.conftest import SHARED_MODELS, shared_model
from tests.helpers import run_ort

SHIM = Path(__file__).resolve().parent / "shim"
CHECK = ("-fsyntax-only", "-x", "c++", "-std=c++17", "-nostdinc++", "-isystem", str(SHIM),
         "-Werror=unknown-attributes")

pytestmark = [pytest.mark.toolchain, pytest.mark.models]


@pytest.fixture(scope="module")
def metal_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A shared model's apple-m2 bundle, compiled once per module."""
    made: dict[str, Path] = {}

    def bundle(name: str) -> Path:
        if name not in made:
            out = tmp_path_factory.mktemp("metal") / f"{name}.tar"
            made[name] = deepc.compile(shared_model(name), "apple-m2").save(out)
        return made[name]

    return bundle


def _member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle) as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


@pytest.mark.skipif(shutil.which("clang++") is None, reason="clang++ checks the MSL here")
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_msl_compiles_as_cpp_against_the_shim(name: str, metal_bundle: Callable[[str], Path],
                                              tmp_path: Path) -> None:
    source = _member(metal_bundle(name), "lib/kernels.metal").decode()
    assert "kernel void" in source and "[[buffer(0)]]" in source
    assert "__syncthreads" not in source and "threadIdx" not in source
    path = tmp_path / f"{name}.metal"
    path.write_text(source)
    done = subprocess.run(["clang++", *CHECK, str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_msl_runs_on_cpu_threadgroups(name: str, metal_bundle: Callable[[str], Path],
                                      tmp_path: Path) -> None:
    """The kernels themselves, barriers included, over the bundle's plan, on the CPU."""
    path = shared_model(name)
    feeds = random_inputs(load(path), seed=11)
    got = run_bundle(metal_bundle(name), feeds, tmp_path)
    for out, want in zip(got, run_ort(onnx.load(str(path)), feeds)):
        np.testing.assert_allclose(out, want, rtol=1e-3, atol=1e-4)


def test_metal_bundle(metal_bundle: Callable[[str], Path]) -> None:
    bundle = metal_bundle("lstm")
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    readme = _member(bundle, "README.md").decode()
    plan = _member(bundle, "lib/plan.txt").decode()
    manifest = json.loads(_member(bundle, "manifest.json"))
    assert {"lib/kernels.metal", "params.bin", "example/main.m", "example/build.sh"} <= names
    assert "None of it ran on Apple hardware" in " ".join(readme.split())
    launches = [ln.split() for ln in plan.splitlines() if ln.startswith("launch ")]
    assert [w[1] for w in launches] == [x["func"] for x in manifest["device_plan"]["launches"]]
    with pytest.raises(deepc.DeepcError, match="metal devices, which this deepc cannot run"):
        deepc.load(bundle)

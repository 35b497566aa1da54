"""The Metal backend: every shared model's MSL compiles as C++17 with clang against the shim
header in shim/ (a syntax and type check — not Apple's compiler), and the bundle carries the
source, the plan, a build script and a host program, and says what was not checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

import deepc
from tests.conftest import SHARED_MODELS, shared_model

SHIM = Path(__file__).resolve().parent / "shim"
CHECK = ("-fsyntax-only", "-x", "c++", "-std=c++17", "-nostdinc++", "-isystem", str(SHIM),
         "-Werror=unknown-attributes")

pytestmark = [pytest.mark.toolchain, pytest.mark.models,
              pytest.mark.skipif(shutil.which("clang++") is None,
                                 reason="clang++ checks the MSL here")]


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_msl_compiles_as_cpp_against_the_shim(name: str, tmp_path: Path) -> None:
    compiled = deepc.compile(shared_model(name), "apple-m2")
    source = compiled.module.source
    assert "kernel void" in source and "[[buffer(0)]]" in source
    assert "__syncthreads" not in source and "threadIdx" not in source
    path = tmp_path / f"{name}.metal"
    path.write_text(source)
    done = subprocess.run(["clang++", *CHECK, str(path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_metal_bundle(tmp_path: Path) -> None:
    bundle = deepc.compile(shared_model("lstm"), "apple-m2").save(tmp_path / "m.tar")
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        readme = tar.extractfile("README.md").read().decode()  # type: ignore[union-attr]
        plan = tar.extractfile("lib/plan.txt").read().decode()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"lib/kernels.metal", "params.bin", "example/main.m", "example/build.sh"} <= names
    assert "None of it ran on Apple hardware" in " ".join(readme.split())
    launches = [ln.split() for ln in plan.splitlines() if ln.startswith("launch ")]
    assert [w[1] for w in launches] == [x["func"] for x in manifest["device_plan"]["launches"]]
    with pytest.raises(deepc.DeepcError, match="metal devices, which this deepc cannot run"):
        deepc.load(bundle)


@pytest.mark.parametrize("name", ["lstm", "encoder"])
def test_msl_runs_on_cpu_threadgroups(name: str, tmp_path: Path) -> None:
    """The kernels themselves, barriers included, run with threadgroups emulated on the CPU
    (tests/backends/metal/threadgroups.py), against onnxruntime."""
    import onnx

    from deepc.frontends import load
    from deepc.runtime.inputs import random_inputs
    from tests.backends.metal.threadgroups import run_bundle
    from tests.helpers import run_ort

    path = shared_model(name)
    bundle = deepc.compile(path, "apple-m2").save(tmp_path / "m.tar")
    feeds = random_inputs(load(path), seed=11)
    for got, want in zip(run_bundle(bundle, feeds, tmp_path), run_ort(onnx.load(str(path)),
                                                                      feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)

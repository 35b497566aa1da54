"""The shared models compiled for opencl-cpu and run on PoCL: through deepc.load (and once
through `deepc run`, and once through the bundle's C host program), against onnxruntime."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import deepc
from deepc.cli import main
from deepc.frontends import load
from deepc.runtime.inputs import random_inputs
from deepc.runtime.opencl_model import DEVICE_ENV
from tests.conftest import SHARED_MODELS, shared_model
from tests.helpers import run_ort

pytestmark = [pytest.mark.toolchain, pytest.mark.models]
RTOL, ATOL = 1e-3, 1e-4


def _reference(path: Path, seed: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    feeds = random_inputs(load(path), seed=seed)
    return feeds, run_ort(onnx.load(str(path)), feeds)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_on_pocl(name: str, opencl_bundle: Callable[[Path], Path]) -> None:
    path = shared_model(name)
    feeds, want = _reference(path, 1234)
    model = deepc.load(opencl_bundle(path))
    got = model.run(feeds)
    for out, ref in zip(got.values(), want):
        np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)


def test_deepc_run_on_pocl(opencl_bundle: Callable[[Path], Path], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "")  # restored after: --device sets it for the process
    path = shared_model("lstm")
    feeds, want = _reference(path, 7)
    inputs = []
    for name, array in feeds.items():
        np.save(tmp_path / f"{name}.npy", array)
        inputs += ["-i", f"{name}={tmp_path / f'{name}.npy'}"]
    result = CliRunner().invoke(main, ["run", str(opencl_bundle(path)), "--device", "cpu",
                                       *inputs, "-d", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "out" / "output.npy"), want[0], rtol=RTOL,
                               atol=ATOL)


def test_host_program_matches_python(opencl_bundle: Callable[[Path], Path],
                                     tmp_path: Path) -> None:
    """bin/run_model (the bundle's example/main.c, prebuilt) gives the Python runtime's
    outputs on the same raw input files; example/Makefile builds the same program."""
    path = shared_model("squeezenet1_1")
    bundle = opencl_bundle(path)
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "b", filter="data")
    root = tmp_path / "b"
    runner = root / "bin" / "run_model"
    if not runner.exists():
        pytest.skip("bin/run_model was not prebuilt (no OpenCL headers or loader here)")
    feeds, want = _reference(path, 3)
    names = []
    for k, array in enumerate(feeds.values()):
        array.tofile(tmp_path / f"in{k}.bin")
        names.append(str(tmp_path / f"in{k}.bin"))
    done = subprocess.run([str(runner), "-d", "cpu", str(root), *names,
                           str(tmp_path / "out0.bin")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    ours = deepc.load(bundle).run(feeds)["output"]
    got = np.fromfile(tmp_path / "out0.bin", dtype=np.float32).reshape(ours.shape)
    np.testing.assert_array_equal(got, ours)
    np.testing.assert_allclose(got, want[0], rtol=RTOL, atol=ATOL)
    if shutil.which("make"):
        made = subprocess.run(["make", "-C", str(root / "example")], capture_output=True,
                              text=True, check=False)
        assert made.returncode == 0, made.stderr


def test_kernels_are_built_once_per_device(opencl_bundle: Callable[[Path], Path]) -> None:
    """The built kernels are cached in the deepc cache, keyed by source and device: PoCL's own
    cache lives there (pyopencl leaves source builds to drivers that cache them, and keeps
    the binaries of the others in cache_dir("opencl")); a second load and run builds nothing."""
    import os

    from deepc.cache import cache_dir

    bundle = opencl_bundle(shared_model("lstm"))
    feeds = random_inputs(load(shared_model("lstm")), seed=0)
    deepc.load(bundle).run(feeds)
    pocl = Path(os.environ["POCL_CACHE_DIR"])
    assert pocl.is_relative_to(cache_dir())

    def files() -> set[Path]:
        return {p for root in (pocl, cache_dir("opencl")) for p in root.rglob("*")
                if p.is_file() and "tempfile" not in p.name}

    before = files()
    assert before, "the built kernels are cached"
    deepc.load(bundle).run(feeds)
    assert files() == before

"""CUDA bundles: every kernel of the shared models through nvcc (one call per model), the
bundle's launch plan, and the one-line errors when nvcc or pycuda is missing."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

import deepc
from deepc.errors import DeepcError, ToolchainError
from tests.conftest import SHARED_MODELS, shared_model

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc not on PATH: CUDA kernels are built with it")


@pytest.mark.toolchain
@pytest.mark.models
@needs_nvcc
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_builds(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    compiled = deepc.compile(shared_model(name), "cuda-sm90")
    assert compiled.module.binary[:4] == b"\x7fELF"
    path = compiled.save(tmp_path / f"{name}.tar")
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert "lib/kernels.cubin" in names and "lib/kernels.cu" in names
    plan = manifest["device_plan"]
    assert manifest["library"] == "lib/kernels.cubin"
    assert len(plan["launches"]) >= len(manifest["plan"]["calls"])
    for launch in plan["launches"]:
        assert launch["block"][0] <= 1024
        assert all(0 <= a < plan["arena_bytes"] for a in launch["args"])


def test_missing_nvcc_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from deepc.backends.cuda import build
    from deepc.target import load_target

    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match="nvidia-cuda-toolkit") as err:
        build.build_cubin("extern \"C\" __global__ void k() {}", load_target("cuda-sm90"))
    assert "\n" not in str(err.value)


def _has_gpu() -> bool:
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


@pytest.mark.skipif(_has_gpu(), reason="checks the error where there is no GPU")
@needs_nvcc
def test_loading_without_gpu_is_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.backends.test_cstyle import _relu_model

    path = deepc.compile(_relu_model(), "cuda-sm90").save(tmp_path / "m.tar")
    with pytest.raises(DeepcError, match="CUDA") as err:
        deepc.load(path)
    assert "\n" not in str(err.value)


@pytest.mark.toolchain
@pytest.mark.models
@pytest.mark.skipif(not _has_gpu(), reason="no CUDA GPU (or no pycuda) on this machine")
@pytest.mark.parametrize("tf32", [False, True], ids=["fp32", "tf32"])
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_runs_on_gpu(name: str, tf32: bool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import onnxruntime as ort

    from deepc.bench import tolerances

    path = shared_model(name)
    compiled = deepc.compile(path, "cuda-sm90", allow_tf32=tf32)
    model = deepc.load(compiled.save(tmp_path / "m.tar"))
    feeds = model.random_inputs(seed=0)
    got = model.run(feeds)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    rtol, atol = tolerances(tf32, want)
    for g, w in zip(got.values(), want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)

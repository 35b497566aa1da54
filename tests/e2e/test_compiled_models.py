"""Whole models compiled for the host, bundled, loaded and run; compared with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import deepc
from deepc.frontends import load
from deepc.runtime.inputs import random_inputs
from tests.conftest import ROOT, SHARED_MODELS, shared_model
from tests.e2e.models import LIGHT_MODELS, light_inputs, light_model, light_reference_outputs
from tests.helpers import run_ort

RTOL, ATOL = 1e-3, 1e-4


def compile_and_run(path: Path, feeds: dict[str, np.ndarray], tmp_path: Path,
                    opt_level: int = 3) -> list[np.ndarray]:
    compiled = deepc.compile(path, "host", opt_level=opt_level)
    bundle = compiled.save(tmp_path / f"{path.stem}.tar")
    model = deepc.load(bundle)
    out = model.run(feeds)
    return [out[name] for name in compiled.graph.outputs]


def test_example_model(tmp_path: Path) -> None:
    path = ROOT / "examples" / "tiny_cnn.onnx"
    feeds = random_inputs(load(path), seed=7)
    ours = compile_and_run(path, feeds, tmp_path)
    for got, want in zip(ours, run_ort(onnx.load(str(path)), feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_compiled(name: str, tmp_path: Path) -> None:
    path = shared_model(name)
    feeds = random_inputs(load(path), seed=1234)
    ours = compile_and_run(path, feeds, tmp_path)
    for got, want in zip(ours, run_ort(onnx.load(str(path)), feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("opt_level", [0, 1, 2])
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_at_lower_opt_levels(name: str, opt_level: int, tmp_path: Path) -> None:
    """Each pipeline (-O0 plain kernels, -O1 graph rewrites, -O2 fusion) keeps the numbers."""
    path = shared_model(name)
    feeds = random_inputs(load(path), seed=99 + opt_level)
    ours = compile_and_run(path, feeds, tmp_path, opt_level)
    for got, want in zip(ours, run_ort(onnx.load(str(path)), feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_compiled(name: str, tmp_path: Path) -> None:
    path = light_model(name)
    model = onnx.load(str(path))
    feeds = light_inputs(model)
    ours = compile_and_run(path, feeds, tmp_path)
    for got, want in zip(ours, light_reference_outputs(name)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    for got, want in zip(ours, run_ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.models
@pytest.mark.slow
def test_resnet18_through_the_cli(tmp_path: Path) -> None:
    """`deepc compile` then `deepc run --input` on a real model, compared with onnxruntime."""
    from tests.test_cli import run

    path = shared_model("resnet18")
    feeds = random_inputs(load(path), seed=11)
    np.save(tmp_path / "x.npy", feeds["input"])
    code, _, err = run("compile", str(path), "-t", "host", "-o", str(tmp_path / "r.tar"))
    assert code == 0, err
    code, _, err = run("run", str(tmp_path / "r.tar"), "-i", f"input={tmp_path / 'x.npy'}",
                       "-d", str(tmp_path / "out"))
    assert code == 0, err
    want = run_ort(onnx.load(str(path)), feeds)[0]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "output.npy"), want, rtol=RTOL,
                               atol=ATOL)

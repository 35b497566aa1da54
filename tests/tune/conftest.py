"""Shared pieces of the tuner's tests: the tiny model, its kernels, the host."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny_cnn.onnx"


@pytest.fixture(scope="session")
def host():  # type: ignore[no-untyped-def]
    from deepc.target import load_target

    return load_target("host")


@pytest.fixture(scope="session")
def tiny_kernels(host):  # type: ignore[no-untyped-def]
    from deepc.compiler.pipeline import lower_model

    return lower_model(TINY, host)[1]


def assert_matches_ort(compiled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The compiled tiny model, bundled and run, gives onnxruntime's outputs."""
    import onnxruntime as ort

    import deepc
    from deepc.runtime.inputs import random_inputs

    feeds = random_inputs(compiled.graph, 0)
    model = deepc.load(compiled.save(tmp_path / "model.tar"))
    ours = list(model.run(feeds).values())
    session = ort.InferenceSession(str(TINY), providers=["CPUExecutionProvider"])
    for a, b in zip(ours, session.run(None, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

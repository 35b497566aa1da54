"""The graph interpreter (numpy references) against onnxruntime on whole real models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from deepc.frontends import load
from deepc.ops.interpreter import run_graph
from deepc.runtime.inputs import random_inputs
from tests.conftest import SHARED_MODELS, shared_model
from tests.e2e.models import LIGHT_MODELS, light_inputs, light_model, light_reference_outputs
from tests.helpers import run_ort

RTOL, ATOL = 1e-3, 1e-4


@pytest.mark.models
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_matches_onnxruntime(name: str) -> None:
    path = shared_model(name)
    graph = load(path)
    feeds = random_inputs(graph, seed=1234)
    ours = run_graph(graph, feeds)
    theirs = run_ort(onnx.load(str(path)), feeds)
    for out_name, expected in zip(graph.outputs, theirs):
        np.testing.assert_allclose(ours[out_name], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_matches_reference_and_onnxruntime(name: str) -> None:
    path = light_model(name)
    model = onnx.load(str(path))
    feeds = light_inputs(model)
    graph = load(path)
    ours = [run_graph(graph, feeds)[o] for o in graph.outputs]
    for got, want in zip(ours, light_reference_outputs(name)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    for got, want in zip(ours, run_ort(model, feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)

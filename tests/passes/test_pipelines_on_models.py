"""Every -O pipeline on real models: the interpreter's numbers after the passes still match
onnxruntime (shared models) or onnx's reference outputs (light models), and the no-ops and
batch norms the simplifier should remove are gone."""

from __future__ import annotations

from functools import cache

import numpy as np
import onnx
import pytest

from deepc.frontends import load
from deepc.ir.graph import Graph
from deepc.ops.interpreter import run_graph
from deepc.passes import PassContext, run_pipeline
from deepc.runtime.inputs import random_inputs
from deepc.target import load_target
from tests.conftest import SHARED_MODELS, shared_model
from tests.e2e.models import LIGHT_MODELS, light_inputs, light_model, light_reference_outputs
from tests.helpers import run_ort

RTOL, ATOL = 1e-3, 1e-4
LEVELS = (0, 1, 2, 3)
SLOW = frozenset({"vgg19"})  # 5 s a run: its 400 MB of weights are computed, not stored


def optimized(graph: Graph, level: int) -> Graph:
    ctx = PassContext(level)  # verifies after every pass
    ctx.target = load_target("host")  # so that the CPU layout pass runs too
    return run_pipeline(graph, level, ctx)


@cache
def shared(name: str) -> tuple[Graph, dict[str, np.ndarray], list[np.ndarray]]:
    path = shared_model(name)
    graph = load(path)
    feeds = random_inputs(graph, seed=1234)
    return graph, feeds, run_ort(onnx.load(str(path)), feeds)


@cache
def light(name: str) -> tuple[Graph, dict[str, np.ndarray], list[np.ndarray]]:
    path = light_model(name)
    return load(path), light_inputs(onnx.load(str(path))), light_reference_outputs(name)


def marked(names: tuple[str, ...], *marks: pytest.MarkDecorator) -> list[object]:
    return [pytest.param(name, level, marks=[*marks, *([pytest.mark.slow] if name in SLOW
                                                        else [])])
            for name in names for level in LEVELS]


def assert_matches(graph: Graph, feeds: dict[str, np.ndarray], expected: list[np.ndarray]
                   ) -> None:
    ours = run_graph(graph, feeds)
    for name, want in zip(graph.outputs, expected):
        np.testing.assert_allclose(ours[name], want, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize(("name", "level"), marked(SHARED_MODELS, pytest.mark.models))
def test_shared_model_matches_onnxruntime_after_the_pipeline(name: str, level: int) -> None:
    graph, feeds, expected = shared(name)
    assert_matches(optimized(graph, level), feeds, expected)


@pytest.mark.parametrize(("name", "level"), marked(LIGHT_MODELS))
def test_light_model_matches_its_reference_after_the_pipeline(name: str, level: int) -> None:
    graph, feeds, expected = light(name)
    assert_matches(optimized(graph, level), feeds, expected)


@pytest.mark.models
def test_resnet18_at_o2_has_no_batch_norm_identity_or_dropout() -> None:
    counts = optimized(shared("resnet18")[0], 2).op_counts()
    assert not {"batch_norm", "identity", "dropout"} & set(counts)


@pytest.mark.models
@pytest.mark.parametrize("name", ["efficientnet_b0", "squeezenet1_1", "encoder"])
def test_identities_are_gone_from_shared_models(name: str) -> None:
    assert "identity" not in optimized(shared(name)[0], 2).op_counts()


@pytest.mark.parametrize("name", ["squeezenet", "inception_v1", "bvlc_alexnet", "vgg19",
                                  "resnet50", "densenet121", "inception_v2", "shufflenet"])
def test_light_models_lose_identities_and_batch_norms_at_o2(name: str) -> None:
    counts = optimized(light(name)[0], 2).op_counts()
    assert not {"batch_norm", "identity"} & set(counts)

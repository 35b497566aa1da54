"""Operators outside the default domain (ai.onnx.ml, ai.onnx.preview.training), compared
with onnx's reference evaluator."""

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from tests.helpers import node_model, run_compute, run_deepc

rng = np.random.default_rng(0)


def _check(model, feeds):  # type: ignore[no-untyped-def]
    want = ReferenceEvaluator(model).run(None, feeds)
    for run in (run_deepc, lambda m, f: run_compute(m, f, compiled=True)):
        for got, expected in zip(run(model, feeds), want):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _with_domain(model, domain: str, version: int):  # type: ignore[no-untyped-def]
    model.graph.node[0].domain = domain
    model.opset_import.append(helper.make_opsetid(domain, version))
    return model


@pytest.mark.parametrize(("op", "states", "attrs"), [
    ("Adagrad", 1, {"decay_factor": 0.1, "epsilon": 1e-5, "norm_coefficient": 0.01}),
    ("Momentum", 1, {"alpha": 0.9, "beta": 0.5, "mode": "nesterov", "norm_coefficient": 0.01}),
    ("Adam", 2, {"alpha": 0.8, "beta": 0.9, "norm_coefficient_post": 0.01}),
])
@pytest.mark.parametrize("step", [0, 3])
def test_training_step(op, states, attrs, step):
    feeds = {"r": np.array(0.1, np.float32), "t": np.array(step, np.int64)}
    for name in ["x", "g"] + [f"s{i}" for i in range(states)]:
        feeds[name] = rng.uniform(0.1, 1, (2, 3)).astype(np.float32)
    model = node_model(op, feeds, n_outputs=1 + states, **attrs)
    _check(_with_domain(model, "ai.onnx.preview.training", 1), feeds)


def test_binarizer_and_array_feature_extractor():
    x = rng.standard_normal((3, 5)).astype(np.float32)
    _check(_with_domain(node_model("Binarizer", {"x": x}, threshold=0.2), "ai.onnx.ml", 1),
           {"x": x})
    feeds = {"x": x, "i": np.array([4, 0, 2], np.int64)}
    _check(_with_domain(node_model("ArrayFeatureExtractor", feeds), "ai.onnx.ml", 1), feeds)

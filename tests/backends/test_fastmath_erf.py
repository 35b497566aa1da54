"""The inline float32 erf of the LLVM backend (fastmath.erf_f32) against math.erf."""

from __future__ import annotations

import math

import numpy as np

from deepc.compiler.jit_graph import run_graph_jit
from deepc.frontends.onnx import convert
from tests.helpers import node_model


def test_erf_accuracy_and_special_values():
    x = np.concatenate([np.linspace(-7, 7, 100_001), [0.0, -0.0, 1e-30, -1e-8, 0.99999, 1.0,
                                                     1.00001, 1e30, np.inf, -np.inf,
                                                     np.nan]]).astype(np.float32)
    graph = convert(node_model("Erf", {"x": x}), {"x": x.shape})
    y = run_graph_jit(graph, {"x": x})[graph.outputs[0]]
    finite = np.isfinite(x)
    ref = np.array([math.erf(v) for v in x[finite].astype(np.float64)])
    np.testing.assert_allclose(y[finite], ref, rtol=1e-6, atol=3e-7)
    assert y[-3] == 1.0 and y[-2] == -1.0 and np.isnan(y[-1])
    assert np.all(np.abs(y[finite]) <= 1.0)

"""A Reshape whose constant target shape was exported with batch 1 follows a replaced batch
dimension (`--batch`, input_shapes), e.g. shufflenet's channel shuffle."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from deepc.errors import DeepcError, FixedDimReplaced
from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph


def _model(target: list[int]):  # type: ignore[no-untyped-def]
    shape = helper.make_tensor("s", 7, [len(target)], target)
    g = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", 1, [1, 8, 3])],
                          [helper.make_tensor_value_info("y", 1, None)], initializer=[shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_fixed_batch_in_reshape_target_follows_the_new_batch() -> None:
    with pytest.warns(FixedDimReplaced, match="fixed at 1, not 5"):  # said, not silent
        graph = convert(_model([1, 2, 4, 3]), {"x": (5, 8, 3)})
    assert graph.types["y"].shape == (5, 2, 4, 3)
    x = np.random.default_rng(0).standard_normal((5, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(graph, {"x": x})["y"], x.reshape(5, 2, 4, 3))


def test_a_reshape_that_cannot_fit_is_still_an_error() -> None:
    with pytest.raises(DeepcError, match="reshape"), pytest.warns(FixedDimReplaced):
        convert(_model([1, 5, 5]), {"x": (5, 8, 3)})

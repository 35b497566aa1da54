"""Models older than opset 7 are upgraded on import, with a ModelUpgraded warning."""

import numpy as np
import pytest
from onnx import TensorProto, helper

from deepc.frontends.onnx_upgrade import ModelUpgraded, upgrade
from tests.helpers import run_deepc

F = TensorProto.FLOAT


def _prelu_opset6():  # type: ignore[no-untyped-def]
    """A per-channel PRelu as opset 6 wrote it: slope [C] for x [N, C, H]."""
    node = helper.make_node("PRelu", ["x", "slope"], ["y"])
    slope = helper.make_tensor("slope", F, [3], [0.1, 0.2, 0.3])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", F, [2, 3, 4])], [slope])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])


def test_old_model_is_upgraded_with_a_notice():
    model = _prelu_opset6()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.warns(ModelUpgraded, match="opset 6 to 9"):
        y = run_deepc(model, {"x": x})[0]
    slope = np.array([0.1, 0.2, 0.3], np.float32).reshape(3, 1)
    np.testing.assert_allclose(y, np.where(x > 0, x, x * slope))


def test_current_model_is_left_alone():
    model = _prelu_opset6()
    model.opset_import[0].version = 13
    assert upgrade(model) == (model, None)

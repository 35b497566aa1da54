import numpy as np
import pytest

from tests.helpers import node_model

rng = np.random.default_rng(0)


@pytest.mark.parametrize(("batch_axis", "time_axis"), [(1, 0), (0, 1)])
def test_reverse_sequence(check, batch_axis, time_axis):
    x = rng.standard_normal((4, 4, 3)).astype(np.float32)
    lengths = np.array([4, 0, 2, 1], np.int64)
    check("ReverseSequence", {"x": x, "lens": lengths}, opset=10, batch_axis=batch_axis,
          time_axis=time_axis)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(run, mode):
    """onnxruntime 1.32 has no TensorScatter: checked against onnx's reference."""
    from onnx.reference import ReferenceEvaluator

    past = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
    update = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    at = [1, 4] if mode == "circular" else [1, 3]  # a linear write must fit the cache
    feeds = {"past": past, "update": update, "at": np.array(at, np.int64)}
    model = node_model("TensorScatter", feeds, opset=24, mode=mode)
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_array_equal(run(model, feeds)[0], want)

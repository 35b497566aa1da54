import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from tests.helpers import node_model

rng = np.random.default_rng(0)


@pytest.mark.parametrize(("group", "offset_group", "with_mask"), [(1, 1, False), (2, 2, True)])
def test_deform_conv(run, group, offset_group, with_mask):
    """Against onnx's reference (onnxruntime 1.32 has no CPU DeformConv)."""
    x = rng.standard_normal((1, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 4 // group, 2, 3)).astype(np.float32)
    out = (5 + 2 - 2) // 1 + 1, (6 + 2 - 3) // 2 + 1
    feeds = {"x": x, "w": w,
             "offset": rng.uniform(-1.5, 1.5, (1, offset_group * 6 * 2, *out)).astype(np.float32),
             "b": rng.standard_normal(4).astype(np.float32)}
    if with_mask:
        feeds["mask"] = rng.uniform(0, 1, (1, offset_group * 6, *out)).astype(np.float32)
    model = node_model("DeformConv", feeds, opset=19, pads=[1, 1, 1, 1], strides=[1, 2],
                       group=group, offset_group=offset_group)
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    np.testing.assert_allclose(run(model, feeds)[0], want, rtol=1e-4, atol=1e-5)

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from tests.helpers import node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
GRID = rng.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)  # some samples outside
TOL = {"rtol": 1e-4, "atol": 1e-5}


@pytest.mark.parametrize(("mode", "padding", "align"), [
    ("bilinear", "zeros", 0), ("bilinear", "border", 1), ("bilinear", "reflection", 0),
    ("nearest", "zeros", 1), ("nearest", "reflection", 1), ("bicubic", "zeros", 0),
    ("bicubic", "reflection", 1),
])
def test_grid_sample_2d(check, mode, padding, align):
    check("GridSample", {"x": X, "grid": GRID}, opset=16, mode=mode, padding_mode=padding,
          align_corners=align, **TOL)


def test_grid_sample_cubic_border_follows_onnx_reference(run):
    """onnxruntime clamps cubic taps differently here; onnx's reference is the spec."""
    model = node_model("GridSample", {"x": X, "grid": GRID}, opset=20, mode="cubic",
                       padding_mode="border")
    want = ReferenceEvaluator(model).run(None, {"x": X, "grid": GRID})[0]
    np.testing.assert_allclose(run(model, {"x": X, "grid": GRID})[0], want, **TOL)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_grid_sample_3d_opset20(check, mode):
    x = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    grid = rng.uniform(-1.1, 1.1, (1, 2, 3, 4, 3)).astype(np.float32)
    check("GridSample", {"x": x, "grid": grid}, opset=20, mode=mode, **TOL)

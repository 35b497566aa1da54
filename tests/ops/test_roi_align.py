import numpy as np
import pytest

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
ROIS = np.array([[0, 0, 8, 7], [1.5, 2.2, 6.1, 5.3], [-2, -1, 3, 2], [7, 6, 12, 11]], np.float32)
BATCH = np.array([0, 1, 1, 0], np.int64)


@pytest.mark.parametrize(("mode", "transform"), [
    ("avg", "half_pixel"), ("avg", "output_half_pixel"), ("max", "output_half_pixel"),
])
def test_roi_align(check, mode, transform):
    check("RoiAlign", {"x": X, "rois": ROIS, "batch": BATCH}, opset=16, mode=mode,
          output_height=3, output_width=4, sampling_ratio=2, spatial_scale=0.9,
          coordinate_transformation_mode=transform, rtol=1e-4, atol=1e-5)

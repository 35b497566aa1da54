import numpy as np
import pytest

rng = np.random.default_rng(0)


@pytest.mark.parametrize(("image", "block", "attrs"), [
    ((5, 5), (2, 2), {}),
    ((6, 7), (3, 2), {"strides": [2, 1], "pads": [1, 0, 1, 2], "dilations": [1, 2]}),
    ((4, 3, 5), (2, 1, 3), {"strides": [1, 2, 2]}),
])
def test_col2im(check, image, block, attrs):
    nd = len(image)
    strides = attrs.get("strides", [1] * nd)
    pads = attrs.get("pads", [0] * 2 * nd)
    dil = attrs.get("dilations", [1] * nd)
    counts = [(image[i] + pads[i] + pads[nd + i] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1
              for i in range(nd)]
    x = rng.standard_normal((2, 3 * int(np.prod(block)), int(np.prod(counts)))).astype(np.float32)
    shapes = {"image": np.array(image, np.int64), "block": np.array(block, np.int64)}
    check("Col2Im", {"x": x, **shapes}, opset=18, initializers=["image", "block"], rtol=1e-5,
          atol=1e-5, **attrs)

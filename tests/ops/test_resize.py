import numpy as np
import pytest

from deepc.compiler.jit_graph import run_graph_jit
from deepc.frontends.onnx import convert
from deepc.lowering.te_graph import run_graph_te
from deepc.ops.interpreter import run_graph
from tests.helpers import node_model

rng = np.random.default_rng(0)
X = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
f32 = np.float32
COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
          "asymmetric", "tf_half_pixel_for_nn"]
SCALES = [f32([1, 1, 2, 3]), f32([1, 1, 0.6, 0.5]), f32([1, 1, 1.7, 0.3]), f32([1, 1, 0.7, 1.43])]
SIZES = [(1, 2, 9, 4), (1, 2, 3, 13)]


# for cases onnxruntime cannot check: deepc's three ways of running a graph
RUNNERS = {"reference": run_graph, "compute": run_graph_te, "compiled": run_graph_jit}


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def resize(check, inputs: dict, opset: int = 19, **attrs) -> list[np.ndarray]:
    inits = [k for k in inputs if k != "x" and inputs[k] is not None]
    return check("Resize", inputs, initializers=inits, opset=opset, **attrs)


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("nearest", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_scales(check, coord, nearest):
    for s in SCALES:
        resize(check, {"x": X, "r": None, "s": s}, mode="nearest", nearest_mode=nearest,
               coordinate_transformation_mode=coord)


@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_interpolation(check, coord, mode):
    for s in SCALES:
        resize(check, {"x": X, "r": None, "s": s}, mode=mode, coordinate_transformation_mode=coord)
    for z in SIZES:
        resize(check, {"x": X, "r": None, "s": None, "z": i64(*z)}, mode=mode,
               coordinate_transformation_mode=coord)


@pytest.mark.parametrize("size", [(1, 2, 9, 4), (1, 2, 3, 13), (1, 2, 10, 14)])
def test_nearest_sizes(check, size):
    for coord in ["half_pixel", "asymmetric", "align_corners"]:
        resize(check, {"x": X, "r": None, "s": None, "z": i64(*size)}, mode="nearest",
               coordinate_transformation_mode=coord)


@pytest.mark.parametrize("run", RUNNERS.values(), ids=RUNNERS.keys())
@pytest.mark.parametrize(("nearest", "expected"), [
    ("round_prefer_ceil", [1, 5, 8, 11, 15, 18]), ("round_prefer_floor", [1, 4, 8, 11, 14, 18]),
])
def test_ties_are_exact_with_sizes(run, nearest, expected):
    """20 -> 6 with half_pixel puts outputs 1 and 4 at 4.5 and 14.5, exact ties. (This
    onnxruntime version reads 14 for round_prefer_ceil, a float32 rounding.)"""
    x = np.arange(20, dtype=np.float32).reshape(1, 1, 1, 20)
    model = node_model("Resize", {"x": x, "r": None, "s": None, "z": i64(1, 1, 1, 6)}, 1, 13,
                       ["z"], mode="nearest", nearest_mode=nearest)
    graph = convert(model, {"x": x.shape})
    assert run(graph, {"x": x})[graph.outputs[0]].ravel().tolist() == expected


@pytest.mark.parametrize("exclude", [0, 1])
@pytest.mark.parametrize("a", [-0.5, -0.75])
def test_cubic_coefficients(check, exclude, a):
    for s in SCALES:
        resize(check, {"x": X, "r": None, "s": s}, mode="cubic", cubic_coeff_a=a,
               exclude_outside=exclude)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", ["half_pixel", "pytorch_half_pixel", "align_corners"])
def test_antialias(check, mode, coord):
    for s in [f32([1, 1, 0.5, 0.3]), f32([1, 1, 0.6, 0.45]), f32([1, 1, 2, 0.7])]:
        for exclude in [0, 1]:
            resize(check, {"x": X, "r": None, "s": s}, mode=mode, antialias=1,
                   exclude_outside=exclude, coordinate_transformation_mode=coord)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_tf_crop_and_resize(check, mode):
    roi = f32([0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3])
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize",
             "extrapolation_value": -3.0}
    resize(check, {"x": X, "r": roi, "s": f32([1, 1, 1.5, 0.8])}, opset=13, **attrs)
    resize(check, {"x": X, "r": roi, "s": None, "z": i64(1, 2, 4, 9)}, opset=13, **attrs)
    resize(check, {"x": X, "r": f32([0.2, 0.9]), "s": None, "z": i64(4)}, axes=[2], **attrs)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_axes_and_aspect_ratio(check, policy):
    for mode in ["nearest", "linear"]:
        resize(check, {"x": X, "r": None, "s": None, "z": i64(11, 4)}, opset=18, mode=mode,
               axes=[3, 2], keep_aspect_ratio_policy=policy)
        resize(check, {"x": X, "r": None, "s": None, "z": i64(8, 11)}, opset=18, mode=mode,
               axes=[2, 3], keep_aspect_ratio_policy=policy)


def test_negative_axes_and_partial_scales(check):
    resize(check, {"x": X, "r": None, "s": f32([2, 0.5])}, opset=18, mode="linear", axes=[-1, 2])
    resize(check, {"x": X, "r": None, "s": None, "z": i64(3)}, opset=18, mode="nearest", axes=[-2])


def test_opset_11_empty_inputs(check):
    empty = np.zeros(0, np.float32)
    resize(check, {"x": X, "r": empty, "s": empty, "z": i64(1, 2, 3, 11)}, opset=11, mode="linear")
    resize(check, {"x": X, "r": empty, "s": f32([1, 1, 2, 2])}, opset=11, mode="nearest")
    resize(check, {"x": X, "r": None, "s": f32([1, 1, 2, 2])}, opset=13, mode="cubic")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_10(check, mode):
    for s in SCALES:
        resize(check, {"x": X, "s": s}, opset=10, mode=mode)


@pytest.mark.parametrize("opset", [7, 8, 9])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample(check, opset, mode):
    scales = [1.0, 1.0, 2.0, 1.5]
    if opset < 9:
        check("Upsample", {"x": X}, opset=opset, mode=mode, scales=scales)
    else:
        check("Upsample", {"x": X, "s": f32(scales)}, initializers=["s"], opset=opset,
                 mode=mode)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32])
def test_integer_inputs(check, dtype):
    x = rng.integers(0, 100, X.shape).astype(dtype)
    resize(check, {"x": x, "r": None, "s": f32([1, 1, 1.6, 0.6])}, mode="nearest")
    # onnxruntime truncates interpolated integers; the reference rounds, as onnx's does
    resize(check, {"x": x, "r": None, "s": f32([1, 1, 1.6, 0.6])}, mode="linear", atol=1)


def test_other_ranks(check):
    x2 = rng.standard_normal((6, 9)).astype(np.float32)
    x3 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x5 = rng.standard_normal((1, 2, 3, 4, 5)).astype(np.float32)
    resize(check, {"x": x2, "r": None, "s": f32([1.5, 0.5])}, mode="cubic")
    resize(check, {"x": x3, "r": None, "s": f32([2, 1.5, 0.6])}, mode="linear")
    resize(check, {"x": x5, "r": None, "s": f32([1, 1, 2, 1.5, 0.6])}, mode="linear")
    resize(check, {"x": x5, "r": None, "s": f32([1, 2, 2, 1.5, 0.6])}, mode="nearest")
    resize(check, {"x": X, "r": None, "s": f32([1, 1.5, 0.6, 1])}, mode="linear")  # NHWC


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coord", ["align_corners", "pytorch_half_pixel", "tf_crop_and_resize"])
def test_onto_one_element(check, mode, coord):
    """An output axis of length 1 takes a constant coordinate in these modes."""
    roi = f32([0, 0, 0.3, 0.2, 1, 1, 0.8, 0.6]) if coord == "tf_crop_and_resize" else None
    resize(check, {"x": X, "r": roi, "s": None, "z": i64(1, 2, 1, 3)}, opset=13, mode=mode,
           coordinate_transformation_mode=coord)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_identity(check, mode):
    resize(check, {"x": X, "r": None, "s": f32([1, 1, 1, 1])}, mode=mode)

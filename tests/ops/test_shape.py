import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deepc.compiler.jit_graph import run_graph_jit
from deepc.errors import ConversionError, ShapeError
from deepc.frontends.onnx import convert
from deepc.lowering.te_graph import run_graph_te
from deepc.ops.interpreter import run_graph
from tests.helpers import check_op, node_model, run_ort

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
XI = rng.integers(-50, 50, (3, 4, 5)).astype(np.int32)


# for cases onnxruntime cannot check: deepc's three ways of running a graph
RUNNERS = {"reference": run_graph, "compute": run_graph_te, "compiled": run_graph_jit}


def i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


@pytest.mark.parametrize(("shape", "opset"), [
    ((6, 20), 7), ((0, -1), 13), ((-1,), 13), ((2, 0, 4, 5), 13), ((1, -1, 5, 1), 14),
])
def test_reshape(check, shape, opset):
    check("Reshape", {"x": X, "s": i64(*shape)}, initializers=["s"], opset=opset)


def test_reshape_allowzero(check):
    empty = np.zeros((0, 3), np.float32)
    check("Reshape", {"x": empty, "s": i64(3, 0)}, initializers=["s"], opset=14, allowzero=1)


@pytest.mark.parametrize(("x", "shape"), [
    (X[:1, :1, :1, :1], ()), (np.float32(2.5), (1, 1)), (X, (2, 1, 12, 1, 5)),
    (X, (6, 4, 5)), (XI, (60,)), (XI > 0, (5, 12)),
    # runs of axes split and merged: [2*3, 4*5], [2, 3*4, 5], axes regrouped across runs
    (X, (1, 6, 20, 1)), (X, (2, 12, 5)), (X.reshape(6, 20), (1, 2, 3, 4, 5)),
    (X, (3, 8, 5)), (X, (4, 30)), (XI.reshape(1, 3, 20, 1), (3, 4, 5)),
])
def test_reshape_index_arithmetic(check, x, shape):
    check("Reshape", {"x": np.asarray(x), "s": i64(*shape)}, initializers=["s"], opset=13)


@pytest.mark.parametrize(("out", "src"), [((1, 96, 112, 112), (96, 12544)),
                                          ((2, 3, 4, 5), (2, 12, 5)),
                                          ((1, 2, 3, 20), (6, 20))])
def test_reshape_that_splits_runs_of_axes_keeps_its_index_affine(out, src):
    """A reshape from [C, H*W] to [1, C, H, W] reads at an affine offset, so an inlined
    reshape loads vectors instead of dividing out every element's index."""
    from deepc.ir import expr as E
    from deepc.ir.affine import affine, flat_offset
    from deepc.ops.shape import reshape_index

    i = [E.Var(f"i{k}", E.INDEX) for k in range(len(out))]
    offset = affine(flat_offset(src, tuple(reshape_index(i, out, src))))
    assert all(isinstance(t, E.Var) for t, _ in offset.terms), offset
    assert {t.name: c for t, c in offset.terms} == {
        f"i{k}": int(np.prod(out[k + 1:])) for k in range(len(out)) if out[k] > 1}


def test_reshape_needs_a_constant_shape():
    with pytest.raises(ConversionError, match="target shape"):
        check_op("Reshape", {"x": X, "s": i64(6, 20)})


@pytest.mark.parametrize(("axis", "opset"), [(0, 9), (1, 9), (3, 9), (4, 9), (-1, 13), (-4, 13)])
def test_flatten(check, axis, opset):
    check("Flatten", {"x": X}, axis=axis, opset=opset)


def test_squeeze(check):
    x = X.reshape(2, 1, 3, 1, 20)
    check("Squeeze", {"x": x}, opset=11, axes=[1, -2])
    check("Squeeze", {"x": x}, opset=7)
    check("Squeeze", {"x": x, "a": i64(-2)}, initializers=["a"], opset=13)
    check("Squeeze", {"x": x}, opset=13)


def test_unsqueeze(check):
    check("Unsqueeze", {"x": XI}, opset=7, axes=[0, 4])
    check("Unsqueeze", {"x": XI}, opset=11, axes=[-1, 1])
    check("Unsqueeze", {"x": XI, "a": i64(5, 0, -3)}, initializers=["a"], opset=13)


def test_transpose(check):
    check("Transpose", {"x": X})
    check("Transpose", {"x": X}, perm=[0, 2, 3, 1])
    check("Transpose", {"x": XI}, perm=[1, 0, 2], opset=7)


@pytest.mark.parametrize("shape", [(3, 1, 5), (2, 1, 1, 1), (1,), (4, 1, 1, 1, 1)])
def test_expand(check, shape):
    x = X[:, :, :1, :]
    check("Expand", {"x": x, "s": i64(*shape)}, initializers=["s"], opset=13)


def test_tile(check):
    check("Tile", {"x": XI, "r": i64(2, 1, 3)}, initializers=["r"])
    check("Tile", {"x": X, "r": i64(1, 2, 1, 2)}, initializers=["r"], opset=7)


@pytest.mark.parametrize(("axis", "opset"), [(1, 7), (-1, 13), (0, 13)])
def test_concat(check, axis, opset):
    parts = [np.take(XI, range(i + 1), axis=axis) for i in range(3)]
    check("Concat", {f"x{i}": p for i, p in enumerate(parts)}, axis=axis, opset=opset)


def test_concat_with_an_empty_input_and_bools(check):
    parts = {"a": XI[:, :2] > 0, "b": XI[:, :0] > 0, "c": XI[:, 3:] > 0}
    check("Concat", parts, axis=1, opset=13)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.uint8])
def test_data_movement_dtypes(check, dtype):
    x = XI.astype(dtype)
    check("Transpose", {"x": x}, perm=[2, 0, 1])
    check("Tile", {"x": x, "r": i64(1, 3, 2)}, initializers=["r"])
    check("Split", {"x": x}, n_outputs=2, opset=13, axis=1)
    inputs = {"x": x, "s": i64(-1, 1), "e": i64(-100, 4), "a": i64(1, 2), "p": i64(-2, 2)}
    check("Slice", inputs, initializers=["s", "e", "a", "p"])


def test_split_opset_11_attr(check):
    check("Split", {"x": X}, n_outputs=3, opset=11, axis=-1, split=[1, 3, 1])
    check("Split", {"x": X}, n_outputs=2, opset=7, axis=0)


def test_split_opset_13_input(check):
    check("Split", {"x": X, "s": i64(2, 2)}, initializers=["s"], n_outputs=2, opset=13,
             axis=2)
    check("Split", {"x": XI}, n_outputs=2, opset=13, axis=1)


def test_split_opset_18_num_outputs(check):
    check("Split", {"x": X}, n_outputs=2, opset=18, axis=3, num_outputs=2)
    check("Split", {"x": X}, n_outputs=3, opset=18, axis=2, num_outputs=3)
    check("Split", {"x": X, "s": i64(1, 0, 3)}, initializers=["s"], n_outputs=3, opset=18,
             axis=-2)


def test_expand_rejects_incompatible_shapes():
    model = node_model("Expand", {"x": X, "s": i64(4, 1, 1, 1)}, initializers=["s"])
    with pytest.raises(ShapeError):
        convert(model)


@pytest.mark.parametrize(("starts", "ends", "axes"), [
    ([0, 1], [1, 3], None), ([-3, 1], [100, -1], [2, 1]), ([1], [-100], [3]),
])
def test_slice_opset_9_attrs(check, starts, ends, axes):
    attrs = {} if axes is None else {"axes": axes}
    check("Slice", {"x": X}, opset=9, starts=starts, ends=ends, **attrs)


@pytest.mark.parametrize(("starts", "ends", "axes", "steps"), [
    ((1,), (3,), None, None),
    ((0, 1), (100, 5), (-1, 2), (2, 1)),
    ((-1, 10), (-100, 0), (3, 2), (-1, -2)),
    ((4, 2), (-6, -1), (-2, 1), (-3, -1)),
    ((3,), (1,), (3,), (1,)),  # empty
    ((-2**63,), (2**63 - 1,), (0,), (5,)),
    ((2**63 - 1,), (-2**63,), (2,), (-2,)),
])
def test_slice(check, starts, ends, axes, steps):
    inputs = {"x": X, "s": i64(*starts), "e": i64(*ends),
              "a": None if axes is None else i64(*axes),
              "p": None if steps is None else i64(*steps)}
    check("Slice", inputs, initializers=[k for k in "seap" if inputs[k] is not None])


def test_slice_int_dtype_opset_10(check):
    inputs = {"x": XI, "s": i64(-1), "e": i64(0), "a": i64(0), "p": i64(-1)}
    check("Slice", inputs, initializers=["s", "e", "a", "p"], opset=10)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_opset_7_attrs(check, mode):
    check("Pad", {"x": X}, opset=7, mode=mode, pads=[0, 1, 2, 1, 0, 0, 1, 3], value=1.5)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_opset_13_inputs(check, mode):
    pads = i64(0, 2, 1, 0, 3, 1)
    check("Pad", {"x": XI, "p": pads}, initializers=["p"], opset=13, mode=mode)
    value = np.array(-7, np.int32)
    check("Pad", {"x": XI, "p": pads, "v": value}, initializers=["p", "v"], opset=13)


def test_pad_negative_crops(check):
    pads = i64(0, -1, 2, 0, 0, 1, -2, 1)
    check("Pad", {"x": X, "p": pads}, initializers=["p"], opset=13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_opset_19_axes(check, mode):
    inputs = {"x": X, "p": i64(1, 2, 3, 2), "v": np.array(2.0, np.float32), "a": i64(-1, 2)}
    check("Pad", inputs, initializers=["p", "v", "a"], opset=19, mode=mode)


@pytest.mark.parametrize(("mode", "pads"), [
    ("edge", (0, 5, 0, -1)), ("wrap", (0, 5, 2, 7)), ("wrap", (0, -1, 0, 3)),
])
def test_pad_beyond_the_dimension(check, mode, pads):
    x = XI[0]
    check("Pad", {"x": x, "p": i64(*pads)}, initializers=["p"], opset=19, mode=mode)


def test_pad_reflect_must_stay_inside():
    model = node_model("Pad", {"x": XI[0], "p": i64(0, 5, 0, 0)}, initializers=["p"],
                       mode="reflect")
    with pytest.raises(ShapeError, match="reflect"):
        convert(model)


def test_pad_bool(check):
    check("Pad", {"x": XI > 0, "p": i64(1, 0, 0, 0, 2, 1)}, initializers=["p"])


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_pad_crops_one_side_and_pads_the_other(check, mode):
    check("Pad", {"x": XI, "p": i64(0, -1, 2, 0, 2, -1)}, initializers=["p"], opset=19,
          mode=mode)
    check("Pad", {"x": X, "p": i64(0, 0, 2, -2, 0, 0, -1, 2)}, initializers=["p"], opset=19,
          mode=mode)


@pytest.mark.parametrize(("mode", "opset"), [(None, 7), ("DCR", 13), ("CRD", 13), ("CRD", 11)])
def test_depth_to_space(check, mode, opset):
    x = rng.standard_normal((2, 8, 3, 2)).astype(np.float32)
    attrs = {} if mode is None else {"mode": mode}
    check("DepthToSpace", {"x": x}, blocksize=2, opset=opset, **attrs)


@pytest.mark.parametrize("opset", [7, 13])
def test_space_to_depth(check, opset):
    x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
    check("SpaceToDepth", {"x": x}, blocksize=2, opset=opset)


@pytest.mark.parametrize("run", RUNNERS.values(), ids=RUNNERS.keys())
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_space_to_depth_inverts_depth_to_space(run, mode):
    """SpaceToDepth's mode is opset 28, newer than onnxruntime runs: check the round trip."""
    x = rng.standard_normal((1, 18, 2, 3)).astype(np.float32)
    y = check_op("DepthToSpace", {"x": x}, blocksize=3, mode=mode)[0]
    graph = convert(node_model("SpaceToDepth", {"y": y}, opset=28, blocksize=3, mode=mode),
                    {"y": y.shape})
    np.testing.assert_array_equal(run(graph, {"y": y})[graph.outputs[0]], x)


# -- ops that become constants ------------------------------------------------------------------
@pytest.mark.parametrize(("opset", "attrs"), [
    (13, {}), (15, {"start": 1}), (15, {"start": -3, "end": -1}), (15, {"end": 10}),
    (15, {"start": 3, "end": 1}),
])
def test_shape(check, opset, attrs):
    check("Shape", {"x": X}, opset=opset, **attrs)


def test_size(check):
    check("Size", {"x": XI})


@pytest.mark.parametrize("attrs", [
    {"value": onnx.numpy_helper.from_array(XI)},
    {"value_float": 2.5}, {"value_floats": [1.0, 2.0]}, {"value_int": 7},
    {"value_ints": [3, -4, 5]},
])
def test_constant(check, attrs):
    check("Constant", {}, opset=13, **attrs)


def _constant_value(**attrs: object) -> np.ndarray:
    graph = convert(helper.make_model(helper.make_graph(
        [helper.make_node("Constant", [], ["y"], **attrs)], "g", [],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)])))
    return run_graph(graph, {})[graph.outputs[0]]


def test_constant_strings():
    assert _constant_value(value_strings=["a", "bc"]).tolist() == ["a", "bc"]
    assert _constant_value(value_string="xyz").tolist() == "xyz"


@pytest.mark.parametrize(("indices", "shape"), [([1, 4, 5], [3]), ([0, 1, 1, 1, 1, 2], [3, 2])])
def test_constant_sparse(indices, shape):
    """onnxruntime returns a sparse tensor here, so the expected value is written out."""
    sparse = helper.make_sparse_tensor(
        helper.make_tensor("v", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0]),
        helper.make_tensor("i", TensorProto.INT64, shape, indices), [2, 3])
    expected = np.array([[0, 1, 0], [0, 2, 3]], np.float32)
    np.testing.assert_array_equal(_constant_value(sparse_value=sparse), expected)


@pytest.mark.parametrize(("shape", "value"), [
    ((2, 3), None), ((), None), ((3, 0), None), ((4, 5), np.array([7], np.int32)),
    ((64, 128), np.array([1.5], np.float32)),  # too big to fold: stays a broadcast_to
])
def test_constant_of_shape(check, shape, value):
    attrs = {} if value is None else {"value": onnx.numpy_helper.from_array(value)}
    check("ConstantOfShape", {"s": i64(*shape)}, initializers=["s"], **attrs)


def test_large_constant_of_shape_is_not_a_weight():
    model = node_model("ConstantOfShape", {"s": i64(512, 512)}, initializers=["s"])
    graph = convert(model)
    assert graph.op_counts() == {"broadcast_to": 1}
    assert graph.param_bytes == 4


@pytest.mark.parametrize(("start", "limit", "delta"), [
    (np.int64(2), np.int64(11), np.int64(3)), (np.int32(10), np.int32(-3), np.int32(-4)),
    (np.int64(5), np.int64(1), np.int64(1)),
    (np.float32(0.5), np.float32(3.3), np.float32(0.4)),
])
def test_range(check, start, limit, delta):
    check("Range", {"a": start, "b": limit, "c": delta}, initializers=["a", "b", "c"])


@pytest.mark.parametrize("attrs", [{}, {"k": 1}, {"k": -2, "dtype": TensorProto.INT32}])
def test_eye_like(check, attrs):
    check("EyeLike", {"x": XI[0]}, **attrs)


def test_exporter_shape_chain_folds_to_one_reshape():
    """x.view(x.size(0), x.size(1), -1) as exporters write it: Shape -> Slice -> Concat ->
    Reshape. Once Shape is a constant the whole chain folds away."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["head"]),
        helper.make_node("Concat", ["head", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [onnx.numpy_helper.from_array(v, k) for k, v in
             {"zero": i64(0), "two": i64(2), "minus_one": i64(-1)}.items()]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    ir = convert(model)
    assert ir.op_counts() == {"reshape": 1}
    assert ir.nodes[0].attrs["shape"] == (2, 3, 20)
    np.testing.assert_array_equal(run_graph(ir, {"x": X})["y"], run_ort(model, {"x": X})[0])

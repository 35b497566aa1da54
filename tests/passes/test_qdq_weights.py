"""fold_qdq on weights quantised at run time: QuantizeLinear of a float weight (behind an
identity and another QDQ pair, as the encoder's shared layers are) folds to constant bytes,
and uint8 weights at zero point 128 become dot-product words; the integers equal
onnxruntime's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext
from deepc.target import load_target
from tests.helpers import run_ort

RNG = np.random.default_rng(17)


def _matmul(zero_w: int) -> onnx.ModelProto:
    """x[8, 24] @ Q(identity(DQ(Q(w)))) with uint8 weights at zero point `zero_w`."""
    w = (RNG.standard_normal((24, 32)) * 0.05).astype(np.float32)
    w[0, 0] = 0.5  # saturates at 255: 128 above zero point 127
    inits = [numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.float32(0.0008), "sw"),
             numpy_helper.from_array(np.uint8(zero_w), "zw"),
             numpy_helper.from_array(np.float32(0.02), "sx"),
             numpy_helper.from_array(np.uint8(120), "zx"),
             numpy_helper.from_array(np.float32(0.01), "sy"),
             numpy_helper.from_array(np.uint8(125), "zy")]
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "sw", "zw"], ["w0q"]),
        helper.make_node("DequantizeLinear", ["w0q", "sw", "zw"], ["w0"]),
        helper.make_node("Identity", ["w0"], ["w1"]),
        helper.make_node("QuantizeLinear", ["w1", "sw", "zw"], ["wq"]),
        helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (8, 24))],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("zero_w", [128, 127, 126])
def test_run_time_quantised_weights_fold_to_constant_words(zero_w: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Zero point 128: every centred weight fits int8, dot-product words; 127 lets +128
    through, which fits negated (words of the negated weights, the multiplier negated);
    126 lets +129 through: the widening int32 matmul (on constant weights) keeps it exact."""
    import deepc

    model = _matmul(zero_w)
    feeds = {"x": (RNG.standard_normal((8, 24)) * 2).astype(np.float32)}
    folded = PASSES["fold_qdq"](convert(model, {"x": (8, 24)}),
                                PassContext(target=load_target("rpi5")))
    ops = [n.op for n in folded.nodes]
    assert "quantize_linear" not in ops[1:]  # the weights' quantizes are constants now
    assert ("dot4_matmul" in ops) == (zero_w >= 127) and ("matmul" in ops) == (zero_w == 126)
    multiplier = folded.constants[next(n for n in folded.nodes if n.op == "requantize").inputs[1]]
    assert (multiplier.ravel()[:32] < 0).all() == (zero_w == 127)  # 32 columns, zeros after
    want = run_ort(model, feeds)[0]
    path = tmp_path / "mm.onnx"
    onnx.save(model, str(path))
    compiled = deepc.load(deepc.compile(path, "host").save(tmp_path / "mm.tar"))
    np.testing.assert_array_equal(compiled.run(feeds)["out"], want)
    np.testing.assert_array_equal(run_graph(folded, feeds)["out"], want)

"""Operator fusion: the groups it forms on small graphs and real models, and the numbers the
fused kernels compute (compiled through deepc.compile and run by JIT, against the
interpreter)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import deepc
from deepc.frontends import load
from deepc.frontends.onnx import convert
from deepc.ir.graph import Graph
from deepc.ir.loop import Allocate, Store, walk_stmts
from deepc.lowering.kernels import group_kernel
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext
from deepc.passes.fuse import fusion_groups, groups_of, master_of
from deepc.passes.verify import verify_graph
from deepc.runtime.jit_model import JitModel
from tests.conftest import shared_model

RNG = np.random.default_rng(0)


def onnx_graph(nodes: Sequence[onnx.NodeProto], inputs: Mapping[str, tuple[int, ...]],
               outputs: Sequence[str], consts: Mapping[str, np.ndarray] | None = None) -> Graph:
    """A graph IR from ONNX nodes over float32 inputs (opset 17)."""
    graph = helper.make_graph(
        list(nodes), "t",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in (consts or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return convert(model, dict(inputs))


def weights(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32) * 0.2


def feeds_for(graph: Graph, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(graph.types[n].shape).astype(np.float32)
            for n in graph.inputs}


def fused(graph: Graph) -> Graph:
    return verify_graph(PASSES["fuse"](graph, PassContext(2)))


def op_groups(graph: Graph) -> list[list[str]]:
    return [[n.op for n in g] for g in groups_of(fused(graph))]


def assert_compiled_matches(graph: Graph, opt_level: int = 2, rtol: float = 1e-4,
                            atol: float = 1e-5) -> deepc.CompiledModel:
    feeds = feeds_for(graph)
    compiled = deepc.compile(graph, "host", opt_level=opt_level)
    got = JitModel(compiled).run(feeds)
    want = run_graph(graph, feeds)
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol)
    return compiled


def conv_block(residual: bool = False) -> Graph:
    """conv -> + bias[1,C,1,1] -> relu (-> + x -> relu)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["cb"]),
             helper.make_node("Relu", ["cb"], ["r"])]
    out = "r"
    if residual:
        nodes += [helper.make_node("Add", ["r", "x"], ["s"]),
                  helper.make_node("Relu", ["s"], ["y"])]
        out = "y"
    return onnx_graph(nodes, {"x": (1, 8, 6, 6)}, [out],
                      {"w": weights(8, 8, 3, 3), "b": weights(1, 8, 1, 1)})


# -- groups on small graphs ---------------------------------------------------------------------
def test_conv_bias_relu_is_one_group() -> None:
    assert op_groups(conv_block()) == [["conv", "add", "relu"]]


def test_residual_add_reading_another_value_fuses_into_the_conv() -> None:
    assert op_groups(conv_block(residual=True)) == [["conv", "add", "relu", "add", "relu"]]
    assert_compiled_matches(conv_block(residual=True))


def test_conv_epilogue_is_one_loop_nest_with_one_store() -> None:
    graph = fused(conv_block(residual=True))
    (group,) = groups_of(graph)
    func = group_kernel(graph, group, 0).func
    stores = [s for s in walk_stmts(func.body) if isinstance(s, Store)]
    out = func.params[-1]
    assert [s.buffer.name for s in stores].count(out.name) == 1
    # no buffer for the conv result, bias add, activations: only the accumulator and the
    # padded input
    allocs = {s.buffer.name for s in walk_stmts(func.body) if isinstance(s, Allocate)}
    assert all("acc" in a or "pad" in a for a in allocs), allocs


def test_swish_fuses_into_its_producer() -> None:
    graph = onnx_graph([helper.make_node("Conv", ["x", "w", "b"], ["c"]),
                        helper.make_node("Sigmoid", ["c"], ["s"]),
                        helper.make_node("Mul", ["c", "s"], ["y"])],
                       {"x": (1, 4, 5, 5)}, ["y"], {"w": weights(6, 4, 1, 1), "b": weights(6)})
    assert op_groups(graph) == [["conv", "sigmoid", "mul"]]
    assert_compiled_matches(graph)


def test_output_with_two_consumers_keeps_the_epilogue_out() -> None:
    graph = onnx_graph([helper.make_node("Conv", ["x", "w"], ["c"]),
                        helper.make_node("Relu", ["c"], ["r"]),
                        helper.make_node("Conv", ["c", "w2"], ["d"]),
                        helper.make_node("Add", ["r", "d"], ["y"])],
                       {"x": (1, 4, 5, 5)}, ["y"], {"w": weights(4, 4, 1, 1),
                                                    "w2": weights(4, 4, 1, 1)})
    # the relu cannot be the first conv's epilogue; it is inlined into the second's instead
    assert op_groups(graph) == [["conv"], ["relu", "conv", "add"]]
    assert_compiled_matches(graph)


def test_elementwise_chain_is_one_group_without_master() -> None:
    graph = onnx_graph([helper.make_node("Exp", ["x"], ["a"]),
                        helper.make_node("Add", ["a", "z"], ["b"]),
                        helper.make_node("Tanh", ["b"], ["c"]),
                        helper.make_node("Transpose", ["c"], ["y"], perm=[1, 0])],
                       {"x": (6, 5), "z": (6, 5)}, ["y"])
    (group,) = groups_of(fused(graph))
    assert [n.op for n in group] == ["exp", "add", "tanh", "transpose"]
    assert master_of(group) is None
    assert_compiled_matches(graph)


def test_reduction_fuses_with_injective_producers() -> None:
    graph = onnx_graph([helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
                        helper.make_node("Mul", ["t", "t"], ["sq"]),
                        helper.make_node("Softmax", ["sq"], ["y"], axis=-1)],
                       {"x": (7, 5)}, ["y"])
    (group,) = groups_of(fused(graph))
    assert master_of(group) is not None and master_of(group).op == "softmax"
    assert_compiled_matches(graph)


def test_two_masters_never_share_a_group() -> None:
    graph = onnx_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                        helper.make_node("Softmax", ["m"], ["s"], axis=-1),
                        helper.make_node("MatMul", ["s", "w2"], ["y"])],
                       {"x": (4, 6)}, ["y"], {"w": weights(6, 5), "w2": weights(5, 3)})
    assert op_groups(graph) == [["matmul"], ["softmax"], ["matmul"]]


def test_opaque_ops_stay_alone() -> None:
    graph = onnx_graph([helper.make_node("Relu", ["x"], ["a"]),
                        helper.make_node("CumSum", ["a", "axis"], ["c"]),
                        helper.make_node("Neg", ["c"], ["y"])],
                       {"x": (3, 4)}, ["y"], {"axis": np.array(1, np.int64)})
    assert op_groups(graph) == [["relu"], ["cumsum"], ["neg"]]


def test_flatten_fuses_into_the_gemm_not_the_pool() -> None:
    graph = onnx_graph([helper.make_node("GlobalAveragePool", ["x"], ["p"]),
                        helper.make_node("Flatten", ["p"], ["f"]),
                        helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                       {"x": (1, 8, 4, 4)}, ["y"], {"w": weights(5, 8), "b": weights(5)})
    assert op_groups(graph) == [["global_avg_pool"], ["reshape", "gemm"]]
    assert_compiled_matches(graph)


def test_broadcast_expansion_does_not_recompute_its_producer() -> None:
    graph = onnx_graph([helper.make_node("Sigmoid", ["s"], ["g"]),
                        helper.make_node("Mul", ["x", "g"], ["y"])],
                       {"x": (1, 4, 8, 8), "s": (1, 4, 1, 1)}, ["y"])
    assert op_groups(graph) == [["sigmoid"], ["mul"]]


def test_groups_are_contiguous_numbered_and_topological() -> None:
    # the relu of the conv comes after an unrelated node: fusion moves it next to the conv
    graph = onnx_graph([helper.make_node("Conv", ["x", "w"], ["c"]),
                        helper.make_node("Exp", ["z"], ["e"]),
                        helper.make_node("Relu", ["c"], ["r"]),
                        helper.make_node("Add", ["e", "e"], ["y2"]),
                        helper.make_node("Sigmoid", ["r"], ["y"])],
                       {"x": (1, 3, 4, 4), "z": (2, 2)}, ["y", "y2"], {"w": weights(3, 3, 1, 1)})
    out = fused(graph)
    marks = [n.attr("fuse_group") for n in out.nodes]
    assert marks == sorted(marks) and sorted(set(marks)) == list(range(len(set(marks))))
    assert [[n.op for n in g] for g in groups_of(out)] == [["conv", "relu", "sigmoid"],
                                                           ["exp", "add"]]
    assert_compiled_matches(graph)


def test_fusion_is_part_of_o2_and_o3_only() -> None:
    graph = conv_block(residual=True)
    assert deepc.compile(graph, "host", opt_level=1).stats()["kernels"] == 5
    for level in (2, 3):
        assert assert_compiled_matches(graph, level).stats()["kernels"] == 1


def test_inspect_ir_fused_stage_lists_groups_and_masters() -> None:
    from tests.test_cli import EXAMPLE, run

    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", "fused", "--json")
    assert code == 0, err
    texts = json.loads(out)
    overview = texts.pop("groups")
    assert "kernels at -O2" in overview and len(texts) == len(overview.splitlines()) - 1
    assert any("# master: " in t and ("conv(" in t or "conv_nchwc(" in t)
               for t in texts.values())


# -- real models --------------------------------------------------------------------------------
@pytest.mark.models
def test_resnet18_groups_every_relu_add_and_flatten() -> None:
    graph = load(shared_model("resnet18"))
    groups = fusion_groups(graph)
    counts = graph.op_counts()
    budget = counts["conv"] + counts["gemm"] + counts["max_pool"] + counts["global_avg_pool"] + 2
    assert len(groups) <= budget
    for g in groups:
        assert master_of(g) is not None, [n.op for n in g]  # no standalone relu/add/reshape


@pytest.mark.models
def test_mobilenet_v2_every_clip_joins_a_conv() -> None:
    groups = fusion_groups(load(shared_model("mobilenet_v2")))
    assert all(master_of(g) is not None for g in groups)
    assert all(g[0].op == "conv" for g in groups if any(n.op == "clip" for n in g))


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "encoder"])
def test_fused_models_match_the_interpreter(name: str) -> None:
    graph = load(shared_model(name))
    compiled = assert_compiled_matches(graph, 3, rtol=1e-3, atol=1e-4)
    assert compiled.stats()["kernels"] < len(graph.nodes) // 2 + 1


def test_long_elementwise_chain_splits_into_capped_groups() -> None:
    """Lowering walks a group's expression tree recursively: a chain of 200 ops forms groups
    of at most MAX_GROUP_NODES, not one 200-deep tree (20,000 hit RecursionError)."""
    from deepc.passes.fuse import MAX_GROUP_NODES

    n = 200
    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"t{i}"],
                              ["y" if i == n - 1 else f"t{i + 1}"]) for i in range(n)]
    graph = onnx_graph(nodes, {"x": (2, 3)}, ["y"])
    sizes = [len(g) for g in fusion_groups(graph)]
    assert sum(sizes) == n and max(sizes) <= MAX_GROUP_NODES and len(sizes) < n // 10


def test_blocking_transform_stays_out_of_a_depthwise_conv() -> None:
    """A depthwise conv reads its input along the vector lanes: an inlined NCHW -> NCHWc
    transform would gather each lane; a dense conv broadcasts its input, so it inlines."""
    from deepc.ops.conv_nchwc import weight_to_blocked
    from tests.passes.support import Net

    def graph(group: int) -> Graph:
        n = Net(x=(1, 8, 6, 6))
        blocked = n("layout_transform", "x", src_layout="NCHW", dst_layout="NCHW4c")
        w = weight_to_blocked(weights(8, 8 // group, 3, 3), 1 if group > 1 else 4, 4,
                              group > 1)
        return n.graph(n("conv_nchwc", blocked, n.const(w), pads=(1, 1, 1, 1), group=group))

    assert op_groups(graph(8)) == [["layout_transform"], ["conv_nchwc"]]
    assert op_groups(graph(1)) == [["layout_transform", "conv_nchwc"]]
    assert_compiled_matches(graph(8))


def widened_conv(group: int) -> Graph:
    """uint8 x -> int32 -> minus its zero point -> an int32 conv (a depthwise one for group 8),
    as fold_qdq leaves an int8 model's depthwise convs."""
    from deepc.frontends.builder import GraphBuilder
    from deepc.ir.types import TensorType

    b = GraphBuilder("widened")
    x = b.add_input("x", TensorType((1, 8, 6, 6), "uint8"))
    w = b.add_constant(RNG.integers(-127, 128, (8, 8 // group, 3, 3)).astype(np.int32))
    wide = b.emit("cast", [x], {"to": "int32"}, fold=False)[0]
    centred = b.emit("sub", [wide, b.add_constant(np.int32(131))], fold=False)[0]
    b.outputs = [b.emit("conv", [centred, w], {"group": group, "pads": (1, 1, 1, 1)},
                        fold=False)[0]]
    return b.build()


def test_a_depthwise_int32_conv_widens_its_bytes_itself() -> None:
    graph = widened_conv(group=8)
    assert op_groups(graph) == [["cast", "sub", "conv"]]
    feeds = {"x": RNG.integers(0, 256, (1, 8, 6, 6)).astype(np.uint8)}
    got = JitModel(deepc.compile(graph, "host", opt_level=2)).run(feeds)
    want = run_graph(graph, feeds)
    np.testing.assert_array_equal(got[graph.outputs[0]], want[graph.outputs[0]])


def test_other_convs_read_their_input_widened_by_a_kernel_of_its_own() -> None:
    assert op_groups(widened_conv(group=1)) == [["cast", "sub"], ["conv"]]

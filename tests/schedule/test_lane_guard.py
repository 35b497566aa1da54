"""Packed GEMMs whose columns do not divide into registers (schedule/lane_guard.py): full
vectors with the last panel's lanes past the end, never a scalar loop, and the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.backends.llvm.codegen import vectorizable
from deepc.ir.expr import Const, Load, Var, binary
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Store,
    walk_stmts,
)
from deepc.schedule.cpu import default_schedule, perfect_chain, top_level_nests
from deepc.schedule.cpu_gemm import plan_gemm
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.lane_guard import unguard_lanes
from tests.helpers import node_model
from tests.schedule.test_cpu_gemm import TOL, _kernel_func, compile_run, rand

AVX512 = CpuMachine(512, 24, 2, 32, 1024)
AVX2 = CpuMachine(256, 12, 2, 32, 512)


@pytest.mark.parametrize("machine, lanes", [(AVX512, 16), (AVX2, 8)])
def test_attention_scores_run_as_full_vectors(machine: CpuMachine, lanes: int) -> None:
    """q @ k^T of a ViT (197 tokens, a prime): one register of columns per panel, and every
    loop left vectorized can be emitted as vectors (no guard on its lanes)."""
    func = _kernel_func((3, 197, 64), (3, 64, 197))
    sch = default_schedule(func, machine)
    assert sch.knobs["vector"] == lanes and sch.knobs["pack"]
    assert any(s.primitive == "unguard_lanes" for s in sch.steps)
    out = sch.apply(func)
    loops = [s for s in walk_stmts(out.body) if isinstance(s, For)]
    vector = [s for s in loops if s.kind is ForKind.VECTORIZED]
    assert vector and all(vectorizable(s) for s in vector)
    # the accumulation over k has no guarded version: only the stores at the edge do
    k_loop = next(s for s in loops if s.var.name == "matmul_k")
    assert not any(isinstance(s, For) and s.kind is ForKind.SERIAL
                   for s in walk_stmts(k_loop.body))


def test_columns_that_divide_are_left_alone() -> None:
    sch = default_schedule(_kernel_func((64, 64), (64, 192)), AVX512)
    assert sch.knobs["vector"] % 16 == 0
    assert not any(s.primitive == "unguard_lanes" for s in sch.steps)


def test_a_record_with_a_padded_vector_replays() -> None:
    func = _kernel_func((3, 197, 64), (3, 64, 197))
    chain = perfect_chain(top_level_nests(func.body)[0])
    plan = plan_gemm(chain, AVX512, {"vector": 16})
    assert plan is not None and plan.knobs["vector"] == 16
    assert any(step[0] == "unguard_lanes" for step in plan.steps)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("a", "b"), [
    ((3, 197, 64), (3, 64, 197)),    # ViT attention scores
    ((1, 6, 49, 32), (1, 6, 32, 49)),  # Swin's 7x7 windows
    ((2, 130, 40), (2, 40, 37)),     # a prime just over two registers
])
def test_padded_columns_compute_the_product(a, b, threads, tmp_path) -> None:
    x, w = rand(*a), rand(*b)
    model = node_model("MatMul", {"a": x, "b": w})
    out, _ = compile_run(model, {"a": x, "b": w}, tmp_path, threads)
    np.testing.assert_allclose(out, np.matmul(x.astype(np.float64), w), **TOL)


def test_a_guard_on_an_operand_is_versioned() -> None:
    """Where the lanes past the end would store into an operand, the loop runs twice over:
    as vectors when the whole register is inside it, lane by lane (serial) otherwise."""
    func = _kernel_func((3, 197, 64), (3, 64, 197))
    sch = default_schedule(func, AVX512)
    out = sch.apply(func)
    lane = next(s.args[0] for s in sch.steps if s.primitive == "unguard_lanes")
    assert unguard_lanes(out, lane).body == out.body  # the edge's serial version stays
    versions = [s for s in walk_stmts(out.body) if isinstance(s, IfThenElse)
                and isinstance(s.then, For) and s.then.kind is ForKind.VECTORIZED
                and isinstance(s.otherwise, For) and s.otherwise.kind is ForKind.SERIAL]
    assert versions


def _accumulate(index_of_operand) -> PrimFunc:  # type: ignore[no-untyped-def]
    """for j_o in 0..3 { alloc acc[16]; vectorized for j_i { if j_o*16 + j_i < 40 {
    acc[j_i] = x[<index>] } } }"""
    x, acc = Buffer("x", (48,), "float32"), Buffer("acc", (16,), "float32", "local")
    j_o, j_i = Var("j_o"), Var("j_i")
    col = binary("add", binary("mul", j_o, 16), j_i)
    body = IfThenElse(binary("lt", col, Const(40, "int64")),
                      Store(acc, (j_i,), Load(x, (index_of_operand(j_o, j_i),))))
    nest = For(j_o, 3, ForKind.SERIAL, Allocate(acc, For(j_i, 16, ForKind.VECTORIZED, body)))
    return PrimFunc("f", (x,), nest)


def test_only_private_lanes_lose_their_guard() -> None:
    """A guard falls where the lanes past the end write scratch only and read nothing that
    the test protects; an operand indexed by the tested loops keeps a versioned guard."""
    free = unguard_lanes(_accumulate(lambda j_o, j_i: Const(0, "int64")), "j_i")
    assert not any(isinstance(s, IfThenElse) for s in walk_stmts(free.body))
    for index in (lambda j_o, j_i: j_o, lambda j_o, j_i: binary("add", j_o, j_i)):
        kept = unguard_lanes(_accumulate(index), "j_i")
        assert any(isinstance(s, IfThenElse) and isinstance(s.otherwise, For)
                   and s.otherwise.kind is ForKind.SERIAL for s in walk_stmts(kept.body))


def _matmul_then(ops: list[str], a: tuple[int, ...], b: tuple[int, ...]) -> PrimFunc:
    """The kernel of a @ b followed by elementwise `ops` (fused into its epilogue)."""
    import onnx
    from onnx import helper, numpy_helper

    from deepc.frontends.onnx import convert
    from deepc.lowering.kernels import group_kernel
    from deepc.passes import PASSES, PassContext
    from deepc.passes.fuse import groups_of

    nodes = [helper.make_node("MatMul", ["a", "b"], ["y0"])]
    nodes += [helper.make_node(op, [f"y{k}"], [f"y{k + 1}"]) for k, op in enumerate(ops)]
    graph = helper.make_graph(
        nodes, "mm", [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, a)],
        [helper.make_tensor_value_info(f"y{len(ops)}", onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(rand(*b), "b")])
    fused = PASSES["fuse"](convert(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)])), PassContext())
    (group,) = groups_of(fused)
    return group_kernel(fused, group, 0).func


@pytest.mark.parametrize(("ops", "padded"), [([], True), (["Sigmoid", "Tanh", "Erf"] * 3, False)])
def test_padding_weighs_the_epilogue_run_lane_by_lane(ops: list[str], padded: bool) -> None:
    """24 columns over a short reduction: two registers, the last half past the end, where
    the epilogue is a store; three of 8 lanes where it is costly (an int8 GEMM's requantize
    and residual add ran 3x slower lane by lane: 0.24 -> 0.08 ms)."""
    sch = default_schedule(_matmul_then(ops, (512, 36), (36, 24)), AVX512)
    assert (sch.knobs["vector"], any(s.primitive == "unguard_lanes" for s in sch.steps)) \
        == ((16, True) if padded else (8, False))

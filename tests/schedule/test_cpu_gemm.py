"""The packed GEMM schedule (schedule/cpu_gemm.py, schedule/packing.py): compiled MatMul and
Gemm nodes against numpy across awkward shapes, and the schedule it picks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepc
from deepc.frontends.onnx import convert
from deepc.ir.loop import Allocate, For, ForKind, walk_stmts
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.helpers import node_model

rng = np.random.default_rng(0)
TOL = {"rtol": 1e-4, "atol": 1e-4}


def rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def compile_run(model: Any, feeds: dict[str, np.ndarray], tmp: Path,
                threads: int = 0) -> tuple[np.ndarray, list]:
    compiled = deepc.compile(convert(model, {k: v.shape for k, v in feeds.items()}), "host")
    loaded = deepc.load(compiled.save(tmp / "m.tar"))
    loaded.set_num_threads(threads)
    return next(iter(loaded.run(feeds).values())), compiled.records


def packed(records: list) -> bool:
    return any(r.knobs.get("pack") and any(step[0] == "pack" for steps in r.launches
                                           for step in steps) for r in records)


@pytest.mark.parametrize(("a", "b"), [
    ((256, 256), (256, 256)),     # tiles divide everything
    ((130, 70), (70, 200)),       # M, N, K all ragged
    ((1, 300), (300, 129)),       # one row
    ((67, 33), (33, 65)),         # N just over a vector tile
    ((3, 64, 48), (3, 48, 96)),   # batched
    ((2, 1, 40, 24), (3, 24, 130)),  # broadcast batch, ragged N
    ((37, 19), (19, 5)),          # narrower than a vector
    ((1, 7, 7, 40), (40, 96)),    # a grid of tokens: its two row loops merged
])
def test_matmul_shapes(a, b, tmp_path):
    x, w = rand(*a), rand(*b)
    model = node_model("MatMul", {"a": x, "b": w})
    out, _ = compile_run(model, {"a": x, "b": w}, tmp_path)
    np.testing.assert_allclose(out, np.matmul(x.astype(np.float64), w), **TOL)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("m", "k", "n", "trans_a", "trans_b"), [
    (128, 256, 256, 0, 1),   # x @ W^T, the dense layer shape
    (100, 72, 136, 0, 1),    # ragged, transposed B
    (96, 40, 130, 1, 0),     # transposed A
    (50, 33, 70, 1, 1),      # both transposed
    (1, 256, 192, 0, 1),     # a single row
])
def test_gemm_transposed_with_bias(m, k, n, trans_a, trans_b, threads, tmp_path):
    a = rand(k, m) if trans_a else rand(m, k)
    b = rand(n, k) if trans_b else rand(k, n)
    c = rand(n)
    model = node_model("Gemm", {"a": a, "b": b, "c": c}, initializers=["b", "c"],
                       transA=trans_a, transB=trans_b, alpha=0.5, beta=2.0)
    out, schedules = compile_run(model, {"a": a}, tmp_path, threads)
    aa = a.T if trans_a else a
    bb = b.T if trans_b else b
    expected = 0.5 * (aa.astype(np.float64) @ bb) + 2.0 * c
    np.testing.assert_allclose(out, expected, **TOL)
    if trans_b and m >= 16 and n > 64:
        assert packed(schedules)  # a gathered B is always packed


def test_matmul_relu_epilogue(tmp_path):
    from onnx import TensorProto, helper

    x, w = rand(96, 80), rand(80, 150)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "mm_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [96, 80])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [96, 150])],
        initializer=[__import__("onnx").numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out, _ = compile_run(model, {"x": x}, tmp_path)
    np.testing.assert_allclose(out, np.maximum(x.astype(np.float64) @ w, 0), **TOL)


def _kernel_func(a: tuple[int, ...], b: tuple[int, ...]):  # type: ignore[no-untyped-def]
    from deepc.lowering.kernels import group_kernel
    from deepc.passes.fuse import groups_of

    graph = convert(node_model("MatMul", {"a": rand(*a), "b": rand(*b)}))
    (group,) = groups_of(graph)
    return group_kernel(graph, group, 0).func


def test_schedule_shape():
    """A packed panel per thread, allocated once outside the row tiles; the register tile
    is vectors of the target's width, unrolled over rows, with no guarded tail."""
    func = _kernel_func((512, 512), (512, 512))
    sch = default_schedule(func, CpuMachine(512, 24, 2, 32, 512))
    out = sch.apply(func)
    par = [s for s in walk_stmts(out.body) if isinstance(s, For) and s.kind is ForKind.PARALLEL]
    assert len(par) == 1 and isinstance(par[0].body, Allocate)
    assert par[0].body.buffer.name == "b_pack" and par[0].body.buffer.shape == (512, 64)
    vec = [s for s in walk_stmts(out.body) if isinstance(s, For)
           and s.kind is ForKind.VECTORIZED and s.var.name == "matmul_i1_i"]
    assert vec and all(v.extent % 16 == 0 for v in vec)
    assert any(s.kind is ForKind.UNROLLED for s in walk_stmts(out.body) if isinstance(s, For))


def test_machine_from_target():
    from deepc.target import load_target

    machine = CpuMachine.of(load_target("host"))
    assert machine.l1d_kib > 0 and machine.l2_kib > 0 and machine.accumulator_registers in (12, 24)
    assert CpuMachine.of(load_target("x86_64-avx512")).accumulator_registers == 24
    assert CpuMachine.of(load_target("rpi4")).accumulator_registers == 12


def test_panel_too_large_for_l2_stays_unpacked():
    """A contiguous B whose K x NR panel would overflow half of L2 is left unpacked."""
    from deepc.ir.loop_verify import verify_func
    from deepc.schedule.cpu import perfect_chain, top_level_nests
    from deepc.schedule.cpu_gemm import plan_gemm

    func = verify_func(_kernel_func((256, 4096), (4096, 256)))
    chain = perfect_chain(top_level_nests(func.body)[0])
    assert plan_gemm(chain, CpuMachine(512, 24, 2, 32, 2048)) is not None
    assert plan_gemm(chain, CpuMachine(512, 24, 2, 32, 256)) is None


def test_pack_primitive_transposes_the_panel():
    """pack on its own: the panel's last dimension is the one the named loop walks, and the
    function computes the same thing."""
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
    from deepc.lowering.kernels import group_kernel
    from deepc.passes.fuse import groups_of
    from deepc.schedule.packing import pack

    a, b = rand(5, 7), rand(9, 7)
    graph = convert(node_model("Gemm", {"a": a, "b": b}, transB=1))
    (group,) = groups_of(graph)
    func = group_kernel(graph, group, 0).func
    names = [s.var.name for s in walk_stmts(func.body) if isinstance(s, For)]
    out_i, out_j = names[0], names[1]
    packed_func = pack(func, "b", out_i, out_j)
    panel = [s.buffer for s in walk_stmts(packed_func.body)
             if isinstance(s, Allocate) and s.buffer.name == "b_pack"]
    assert panel and panel[0].shape == (7, 9)
    with pytest.raises(ValueError, match="is not inside"):
        pack(func, "b", out_i, out_i)
    out = np.zeros((5, 9), np.float32)
    jit = JitModule(optimize(emit_module([packed_func]), MachineSpec.host()))
    jit.kernel(packed_func.name, 3)(*[np.ascontiguousarray(x).ctypes.data for x in (a, b, out)])
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.T, **TOL)


def test_row_loops_merge_into_one_matrix():
    """A [1, 7, 7, C] activation times weights tiles 49 rows past one packed panel (held as
    7 x 7, each tile stopped at 7 rows and swin's weights were read unpacked 7 times); a
    batched matmul, whose B moves with the batch, keeps its loops."""
    machine = CpuMachine(256, 12, 1, 32, 512, vector_registers=16, broadcast_operand=False)
    sch = default_schedule(_kernel_func((1, 7, 7, 64), (64, 96)), machine)
    assert sch.knobs.get("merge_rows") and sch.knobs["kind"] == "packed_gemm"
    assert next(s.args for s in sch.steps if s.primitive == "fuse") == ("matmul_i1", "matmul_i2")
    batched = default_schedule(_kernel_func((3, 8, 16), (3, 16, 24)), machine)
    assert "merge_rows" not in batched.knobs
    # 16 cores and 6 panels of 16 columns: the row loop outside the panels stays to split
    many = CpuMachine(256, 12, 16, 32, 512, vector_registers=16, broadcast_operand=False)
    assert "merge_rows" not in default_schedule(_kernel_func((1, 7, 7, 64), (64, 96)),
                                                many).knobs


def test_rows_merge_past_a_residual_add(tmp_path):
    """A residual read in the epilogue moves with the rows and the columns; it is not the B
    operand, so the rows still merge (swin's fc2 + shortcut), and the numbers stay."""
    from onnx import TensorProto, helper, numpy_helper

    x, w, r = rand(1, 7, 7, 48), rand(48, 64), rand(1, 7, 7, 64)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "r"], ["z"])],
        "mm_res", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7, 7, 48]),
                   helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 7, 7, 64])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 7, 7, 64])],
        initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out, _ = compile_run(model, {"x": x, "r": r}, tmp_path)
    np.testing.assert_allclose(out, x.astype(np.float64) @ w + r, **TOL)
    from deepc.lowering.kernels import group_kernel
    from deepc.passes.fuse import groups_of
    from deepc.passes.manager import run_pipeline

    graph = run_pipeline(convert(model))
    (group,) = groups_of(graph)
    machine = CpuMachine(256, 12, 2, 32, 512, vector_registers=16, broadcast_operand=False)
    assert default_schedule(group_kernel(graph, group, 0).func, machine).knobs["merge_rows"]

"""Concat without copies: the parts of a concat are views inside its buffer (no copy kernel):
one range each along an outermost axis, strided rows with a batch or along an inner axis.
Live buffers never overlap them, and the numbers stay those of the numpy reference on the
CPU (JIT and bundle), OpenCL (PoCL) and CUDA C run on the CPU (tiled GEMM epilogues storing
through the joined strides included); where the parts are not the concat's alone, break the
alignment or are concats themselves of a strided concat, the copy stays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import deepc
from deepc.ir.graph import Graph
from deepc.lowering.views import strided_shape
from deepc.ops.interpreter import run_graph
from deepc.passes import PassContext
from deepc.passes.fuse import groups_of
from deepc.runtime.jit_model import JitModel
from tests.compiler.test_plan import simulate, strided_rows
from tests.passes.test_fuse import assert_compiled_matches, feeds_for, fused, onnx_graph, weights


def branches(batch: int = 1, axis: int = 1, channels: Sequence[int] = (8, 8), hw: int = 6,
             out: str = "y", extra: Sequence[str] = (), nest: bool = False,
             ic: int = 4) -> Graph:
    """x (`ic` channels) -> one conv + relu per entry of `channels` -> concat(axis) -> relu
    -> y; with `nest` the last part joins a concat of the others; `extra` adds graph
    outputs."""
    nodes, consts, parts = [], {}, []
    for k, c in enumerate(channels):
        consts[f"w{k}"] = weights(c, ic, 3, 3)
        nodes += [helper.make_node("Conv", ["x", f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{k}"], [f"r{k}"])]
        parts.append(f"r{k}")
    if nest:
        nodes.append(helper.make_node("Concat", parts[:-1], ["inner"], axis=axis))
        parts = ["inner", parts[-1]]
    nodes += [helper.make_node("Concat", parts, ["cat"], axis=axis),
              helper.make_node("Relu", ["cat"], ["y"])]
    return onnx_graph(nodes, {"x": (batch, ic, hw, hw)}, [out, *extra], consts)


def plain_compiled(graph: Graph) -> deepc.CompiledModel:
    """-O2 without the NCHWc layout (which, where parts' channel blocks differ, joins them
    in plain layout right after transforming each: a fused copy, rightly), checked against
    the reference."""
    ctx = PassContext(2, disabled=frozenset({"nchwc_layout"}))
    compiled = deepc.compile(graph, "host", pass_context=ctx)
    feeds = feeds_for(graph)
    got, want = JitModel(compiled).run(feeds), run_graph(graph, feeds)
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)
    return compiled


def concat_calls(compiled: deepc.CompiledModel) -> list[str]:
    return [k.name for k in compiled.plan.calls if "concat" in k.ops]


def assert_views(compiled: deepc.CompiledModel, joined: int) -> None:
    """`joined` concats are written in place: each part's location is its concat's plus its
    offset, and the parts tile each row of the concat without overlap (one row at batch 1);
    a strided part's producer declares it with the concat's shape."""
    plan, graph = compiled.plan, compiled.graph
    assert compiled.stats()["concats_in_place"] == joined
    assert not concat_calls(compiled)
    spans: dict[str, list[tuple[int, int]]] = {}
    rows: dict[str, int] = {}
    for part, (concat, off) in plan.views.items():
        at, base = plan.locations[part], plan.locations[concat]
        assert (at.kind, at.index, at.offset) == (base.kind, base.index, base.offset + off)
        strided = strided_shape(graph.types[part], graph.types[concat]) is not None
        rows[concat] = strided_rows(graph.types[part], graph.types[concat]) if strided else 1
        row = graph.types[part].nbytes // rows[concat]
        spans.setdefault(concat, []).append((off, off + row))
        if rows[concat] > 1:
            (kern,) = [k for k in compiled.kernels if part in k.outputs]
            declared = dict(zip(kern.args, kern.func.params))[part]
            assert declared.shape == graph.types[concat].shape
    for concat, parts in spans.items():
        ends = [0] + [b for _, b in sorted(parts)]
        assert [a for a, _ in sorted(parts)] == ends[:-1], f"{concat}: parts leave gaps"
        assert ends[-1] * rows[concat] == graph.types[concat].nbytes
    simulate(graph, plan)


@pytest.mark.parametrize("level", [0, 2])
def test_parts_are_views_inside_the_concat_buffer(level: int) -> None:
    compiled = assert_compiled_matches(branches(), opt_level=level)
    assert_views(compiled, 1)
    parts = sorted(compiled.plan.views.items(), key=lambda v: v[1][1])
    assert [off for _, (_, off) in parts] == [0, compiled.graph.types[parts[0][0]].nbytes]


def test_a_concat_that_is_the_output_is_written_by_its_parts(tmp_path: Path) -> None:
    graph = branches(out="cat", channels=(8, 16, 8))
    compiled = plain_compiled(graph)
    assert_views(compiled, 1)
    assert {compiled.plan.locations[p].kind for p in compiled.plan.views} == {"output"}
    feeds = feeds_for(graph)
    got = deepc.load(compiled.save(tmp_path / "m.tar")).run(feeds)  # through deepc_run
    np.testing.assert_allclose(got["cat"], run_graph(graph, feeds)["cat"], rtol=1e-4, atol=1e-5)


def test_nested_concats_add_their_offsets() -> None:
    compiled = plain_compiled(branches(nest=True, channels=(8, 8, 16)))
    assert_views(compiled, 2)
    views = compiled.plan.views
    inner = next(p for p, (c, _) in views.items() if p in {c2 for c2, _ in views.values()})
    assert views[inner][1] == 0
    last = max(views.items(), key=lambda v: (v[1][0] == views[inner][0], v[1][1]))[0]
    assert compiled.plan.locations[last].offset - compiled.plan.locations[inner].offset \
        == compiled.graph.types[inner].nbytes


@pytest.mark.parametrize("level", [0, 2])
@pytest.mark.parametrize("batch,channels", [(2, (8, 8)), (4, (8, 8, 8))])
def test_strided_parts_at_a_batch_are_views(level: int, batch: int,
                                            channels: tuple[int, ...]) -> None:
    """At batch 2 and 4 each part's producer writes its channels of every image into the
    joined buffer (one row of all channels per image), on the CPU with and without the
    NCHWc layout."""
    compiled = assert_compiled_matches(branches(batch=batch, channels=channels),
                                       opt_level=level)
    assert_views(compiled, 1)
    parts = sorted(compiled.plan.views.items(), key=lambda v: v[1][1])
    first = compiled.graph.types[parts[0][0]]
    assert parts[1][1][1] == first.nbytes // batch  # the second part starts a row later


@pytest.mark.parametrize("batch", [1, 2])
def test_parts_along_an_inner_axis_are_strided_views(batch: int) -> None:
    """Along H, each part's rows (one per image and channel) lie a joined row apart."""
    compiled = plain_compiled(branches(batch=batch, axis=2))
    assert_views(compiled, 1)
    assert sorted(off for _, off in compiled.plan.views.values()) == [0, 6 * 6 * 4]


@pytest.mark.parametrize("target", ["host", "cuda-sm80"])
def test_a_strided_concat_of_a_concat_copies_it(target: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """At batch 2 the inner concat's parts are views of it, but the inner concat is copied
    into the outer one: its parts' rows would need the outer concat's strides."""
    from deepc.backends.cuda.backend import CudaBackend
    from deepc.backends.gpu.backend import GpuBackend
    from tests.backends.cuda.omp_blocks import run_device_plan

    monkeypatch.setattr(CudaBackend, "binary", GpuBackend.binary)
    graph = branches(batch=2, out="cat", nest=True, channels=(8, 8, 16))
    if target == "host":
        compiled = plain_compiled(graph)
    else:
        compiled = deepc.compile(graph, target, allow_tf32=False)
        assert_matches(graph, run_device_plan(compiled, feeds_for(graph), tmp_path))
    assert set(compiled.plan.views.values()) == {("inner", 0), ("inner", 8 * 36 * 4)}
    assert len(concat_calls(compiled)) == 1


@pytest.mark.parametrize("graph", [
    pytest.param(lambda: branches(axis=2), id="inner-axis-joined-by-the-nchwc-transforms"),
    pytest.param(lambda: branches(extra=["r0"]), id="part-is-an-output"),
    pytest.param(lambda: branches(channels=(1, 1), hw=1), id="unaligned-4-bytes"),
])
def test_other_concats_keep_their_copy(graph: object) -> None:
    compiled = assert_compiled_matches(graph())  # type: ignore[operator]
    assert not compiled.plan.views and compiled.stats()["concats_in_place"] == 0
    assert any("concat" in k.ops for k in compiled.plan.calls)


def test_fusion_keeps_an_in_place_concat_alone() -> None:
    ops = [[n.op for n in g] for g in groups_of(fused(branches()))]
    assert ["concat"] in ops  # not fused into the relu that reads it
    # a slice is no kernel of its own: it stays fused with the concat (shufflenet's split)
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a"], ["half"]),
             helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("Concat", ["half", "c"], ["y"], axis=1)]
    graph = onnx_graph(nodes, {"x": (1, 8, 4, 4)}, ["y"],
                       {"w": weights(4, 8, 1, 1), "s": np.array([0]), "e": np.array([4]),
                        "a": np.array([1])})
    assert ["slice", "concat"] in [[n.op for n in g] for g in groups_of(fused(graph))]
    compiled = assert_compiled_matches(graph)
    assert not compiled.plan.views and concat_calls(compiled)


DEVICE_GRAPHS = [pytest.param(lambda: branches(), id="workspace"),
                 pytest.param(lambda: branches(out="cat", nest=True, channels=(8, 8, 16)),
                              id="nested-in-output"),
                 pytest.param(lambda: branches(batch=2), id="batch2-strided"),
                 pytest.param(lambda: branches(batch=4, out="cat", channels=(8, 16, 8)),
                              id="batch4-strided-output")]


def assert_matches(graph: Graph, got: dict[str, np.ndarray], rtol: float = 1e-4,
                   atol: float = 1e-5) -> None:
    want = run_graph(graph, feeds_for(graph))
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol)


@pytest.mark.parametrize("make", DEVICE_GRAPHS)
def test_opencl_bundles_write_the_parts_in_place(make: object, tmp_path: Path) -> None:
    from tests.backends.opencl.conftest import opencl_missing

    if why := opencl_missing():
        pytest.skip(why)
    graph = make()  # type: ignore[operator]
    compiled = deepc.compile(graph, "opencl-cpu")
    assert_views(compiled, len(set(c for c, _ in compiled.plan.views.values())))
    assert compiled.plan.views
    assert_matches(graph, deepc.load(compiled.save(tmp_path / "m.tar")).run(feeds_for(graph)))


@pytest.mark.parametrize("make", DEVICE_GRAPHS)
def test_cuda_device_plan_writes_the_parts_in_place(make: object, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA C and its device plan (arena offsets per launch), run on the CPU."""
    from deepc.backends.cuda.backend import CudaBackend
    from deepc.backends.gpu.backend import GpuBackend
    from tests.backends.cuda.omp_blocks import run_device_plan

    monkeypatch.setattr(CudaBackend, "binary", GpuBackend.binary)  # no nvcc: the CPU runs it
    graph = make()  # type: ignore[operator]
    compiled = deepc.compile(graph, "cuda-sm80", allow_tf32=False)
    assert compiled.plan.views and not concat_calls(compiled)
    assert_matches(graph, run_device_plan(compiled, feeds_for(graph), tmp_path))


@pytest.mark.parametrize("tf32", [False, True])
@pytest.mark.parametrize("batch,ic,sms,note", [(2, 4, 1, "gemm"), (2, 64, 2, "split-k")])
def test_tiled_gemm_epilogues_store_into_strided_parts(batch: int, ic: int, sms: int,
                                                       note: str, tf32: bool, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On a one-SM sm90 the convs are tiled GEMMs (SIMT and TF32): their epilogues store
    each image's channels through the joined shape's strides, run on the CPU. Over K = 576
    on two SMs they split along K, and the summing launch's epilogue stores there."""
    from dataclasses import replace

    from deepc.backends.cuda.backend import CudaBackend
    from deepc.backends.gpu.backend import GpuBackend
    from deepc.target import load_target
    from tests.backends.cuda.omp_blocks import run_device_plan

    monkeypatch.setattr(CudaBackend, "binary", GpuBackend.binary)
    target = load_target("cuda-sm90")
    target = replace(target, gpu=replace(target.gpu, sm_count=sms))
    graph = branches(batch=batch, channels=(64, 128), hw=8, ic=ic)
    compiled = deepc.compile(graph, target, allow_tf32=tf32)
    assert compiled.plan.views and not concat_calls(compiled)
    notes = [lc.note for st in compiled.module.launches.values() for lc in st]
    assert sum(note in n for n in notes) >= 1 and sum("gemm" in n for n in notes) == 2
    assert_matches(graph, run_device_plan(compiled, feeds_for(graph), tmp_path),
                   *((2e-2, 1e-2) if tf32 else (1e-4, 1e-5)))


def test_hls_top_calls_the_parts_at_their_offsets_in_the_output() -> None:
    """The FPGA arena: one output region the size of the concat; each kernel's part is an
    address inside it (the HLS top function's call arguments, in floats)."""
    graph = branches(out="cat", nest=True, channels=(8, 8, 16))
    compiled = deepc.compile(graph, "fpga-zcu104")
    plan, layout = compiled.plan, compiled.module.report["layout"]
    assert not concat_calls(compiled) and len(plan.views) == 4
    [(start, floats)] = layout["outputs"]
    assert floats == graph.types["cat"].size
    for kern in plan.calls:
        line = next(x for x in compiled.source.splitlines() if x.startswith(f"  {kern.name}("))
        args = [int(a.split("+")[1]) for a in line[line.index("(") + 1:-2].split(",")]
        (part,) = kern.outputs
        assert args[len(kern.inputs)] == start + plan.locations[part].offset // 4

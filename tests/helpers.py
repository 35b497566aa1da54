"""Test helpers: one-node ONNX models, and comparison of deepc's interpreter with onnxruntime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper

from deepc.frontends.onnx import convert
from deepc.ops.interpreter import run_graph


def _vi(name: str, arr: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(
        name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape))


def node_model(op_type: str, inputs: Mapping[str, np.ndarray | None], n_outputs: int = 1,
               opset: int = 17, initializers: Sequence[str] = (), **attrs: Any) -> onnx.ModelProto:
    """A model of one ONNX node. Inputs named in `initializers` become constants; a None
    input is an omitted optional input."""
    names = [k if v is not None else "" for k, v in inputs.items()]
    while names and names[-1] == "":  # onnxruntime crashes on trailing omitted inputs
        names.pop()
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, **attrs)
    graph_inputs = [_vi(k, v) for k, v in inputs.items()
                    if v is not None and k not in initializers]
    inits = [onnx.numpy_helper.from_array(np.asarray(inputs[k]), k) for k in initializers]
    graph = helper.make_graph([node], "test", graph_inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def ort_int8_is_exact() -> bool:
    """Whether onnxruntime's default uint8 x int8 kernels are exact on this host: with VNNI
    (vpdpbusd sums in int32) they are; on AVX2 alone they use vpmaddubsw, whose int16 pair
    sums saturate, and a conv can come out several units off."""
    from deepc.target import load_target

    # avx2_madd is deepc's vpmaddubsw/vpmaddwd pair: onnxruntime's saturating kernel
    return bool(set(load_target("host").dot_intrinsics) - {"avx2_madd"})


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs, with its exact int8 arithmetic: `session.x64quantprecision`
    rewrites uint8 x int8 products to its exact uint8 x uint8 kernels on x86 hosts without
    VNNI (a no-op elsewhere). Where that rewrite fails to build the session (a graph it
    cannot rewrite), a VNNI host falls back to the default session, which is exact there,
    and a host without one skips: no exact reference exists."""
    import onnxruntime as ort

    def session(exact: bool) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if exact:
            opts.add_session_config_entry("session.x64quantprecision", "1")
        return ort.InferenceSession(model.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])

    try:
        sess = session(exact=True)
    except Exception as e:  # onnxruntime raises its own Fail/RuntimeException types
        if not ort_int8_is_exact():
            why = [line for line in str(e).splitlines() if line.strip()][-1].strip()
            pytest.skip(f"onnxruntime's exact int8 rewrite fails on this model ({why}) and its"
                        " default kernels saturate on a host without VNNI: no exact reference")
        sess = session(exact=False)
    return sess.run(None, dict(feeds))


def run_deepc(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    graph = convert(model, {k: tuple(v.shape) for k, v in feeds.items()})
    out = run_graph(graph, feeds)
    return [out[name] for name in graph.outputs]


def check_op(op_type: str, inputs: Mapping[str, np.ndarray | None], *, n_outputs: int = 1,
             opset: int = 17, initializers: Sequence[str] = (), rtol: float = 1e-5,
             atol: float = 1e-6, **attrs: Any) -> list[np.ndarray]:
    """Build a one-node model, run it in deepc's interpreter and onnxruntime, compare."""
    model = node_model(op_type, inputs, n_outputs, opset, initializers, **attrs)
    feeds = {k: v for k, v in inputs.items() if v is not None and k not in initializers}
    expected = run_ort(model, feeds)
    actual = run_deepc(model, feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape, (a.shape, e.shape)
        assert a.dtype == e.dtype, (a.dtype, e.dtype)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return actual


def check_compute(op_type: str, inputs: Mapping[str, np.ndarray | None], *, n_outputs: int = 1,
                  opset: int = 17, initializers: Sequence[str] = (), rtol: float = 1e-5,
                  atol: float = 1e-6, compiled: bool = False, **attrs: Any) -> list[np.ndarray]:
    """Like check_op, but runs deepc's compute definitions instead of the numpy references
    (evaluated with numpy, or with `compiled=True` lowered and JIT-compiled by the LLVM
    backend, node by node), and compares with onnxruntime."""
    from deepc.compiler.jit_graph import run_graph_jit
    from deepc.lowering.te_graph import run_graph_te

    run = run_graph_jit if compiled else run_graph_te
    model = node_model(op_type, inputs, n_outputs, opset, initializers, **attrs)
    feeds = {k: v for k, v in inputs.items() if v is not None and k not in initializers}
    expected = run_ort(model, feeds)
    graph = convert(model, {k: tuple(v.shape) for k, v in feeds.items()})
    out = run(graph, feeds)
    actual = [out[name] for name in graph.outputs]
    for a, e in zip(actual, expected):
        assert a.shape == e.shape, (a.shape, e.shape)
        assert a.dtype == e.dtype, (a.dtype, e.dtype)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return actual


def check_compiled(op_type: str, inputs: Mapping[str, np.ndarray | None],
                   **kwargs: Any) -> list[np.ndarray]:
    """check_compute through the LLVM backend."""
    return check_compute(op_type, inputs, compiled=True, **kwargs)


def run_compute(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray],
                compiled: bool) -> list[np.ndarray]:
    """deepc's outputs through the compute definitions (numpy-evaluated or compiled)."""
    from deepc.compiler.jit_graph import run_graph_jit
    from deepc.lowering.te_graph import run_graph_te

    graph = convert(model, {k: tuple(v.shape) for k, v in feeds.items()})
    out = (run_graph_jit if compiled else run_graph_te)(graph, feeds)
    return [out[name] for name in graph.outputs]

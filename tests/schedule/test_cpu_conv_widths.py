"""Default CPU schedules of convs whose shapes fit the vector poorly: depthwise convs read
their input without a padded copy, and a channel count that the vector lanes do not divide
runs as vectors of a divisor (never as a loop with a bounds test on the lanes, which would
be scalar). Numbers are checked against the interpreter (the ops' numpy references)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deepc.backends.llvm.codegen import emit_module, vectorizable
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
from deepc.ir.graph import Graph
from deepc.ir.loop import Allocate, For, ForKind, PrimFunc, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_reduction import vector_width
from tests.passes.support import Net, weights


def compile_one(graph: Graph, vector_bits: int, knobs: dict[str, Any] | None = None
                ) -> tuple[PrimFunc, list[str]]:
    """The graph's one kernel scheduled by default (with `knobs`: a record's)."""
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    machine = CpuMachine(vector_bits, 24 if vector_bits >= 512 else 12, 1, 32, 512)
    func = default_schedule(kernel.func, machine, knobs).apply(kernel.func)
    return func, list(kernel.inputs)


def run_one(graph: Graph, func: PrimFunc, inputs: list[str],
            feeds: dict[str, np.ndarray]) -> np.ndarray:
    args = [feeds[i] if i in feeds else graph.constants[i] for i in inputs]
    out = np.zeros(graph.types[graph.outputs[0]].shape, np.float32)
    jit = JitModule(optimize(emit_module([func]), MachineSpec.host()))
    jit.kernel(func.name, len(args) + 1)(*[np.ascontiguousarray(a).ctypes.data
                                           for a in [*args, out]])
    return out


def vector_loops(func: PrimFunc) -> list[For]:
    return [s for s in walk_stmts(func.body)
            if isinstance(s, For) and s.kind is ForKind.VECTORIZED]


@pytest.mark.parametrize(("block", "size", "stride", "pad"),
                         [(16, 14, 1, 1), (16, 13, 2, 1), (8, 12, 2, 1), (8, 7, 1, 2),
                          (16, 9, 2, 0)])
def test_depthwise_reads_without_a_padded_copy(block: int, size: int, stride: int,
                                                pad: int) -> None:
    c = 2 * block
    n = Net(x=(1, c // block, size, size + 3, block))
    w = weight_to_blocked(weights(c, 1, 3, 3), block, block, True)
    y = n("relu", n("conv_nchwc", "x", n.const(w), n.const(weights(c)),
                    pads=(pad,) * 4, strides=(stride,) * 2, group=c))
    graph = n.graph(y)
    func, inputs = compile_one(graph, 512)
    # no buffer besides the accumulators: the input is read in place
    allocs = [s.buffer for s in walk_stmts(func.body) if isinstance(s, Allocate)]
    assert all(b.scope == "local" for b in allocs)
    vec = vector_loops(func)
    assert vec and all(f.extent == block and vectorizable(f) for f in vec)
    x = np.random.default_rng(1).standard_normal((1, c, size, size + 3)).astype(np.float32)
    feeds = {"x": block_array(x, block)}
    np.testing.assert_allclose(run_one(graph, func, inputs, feeds), run_graph(graph, feeds)[y],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("extent", "lanes", "width"),
                         [(232, 16, 8), (116, 16, 4), (1000, 16, 8), (64, 16, 64),
                          (13, 16, 13), (58, 8, 2), (48, 16, 16), (96, 16, 32),
                          (24, 16, 8)])
def test_vector_width_divides_the_loop(extent: int, lanes: int, width: int) -> None:
    assert vector_width(extent, lanes) == width


@pytest.mark.parametrize(("channels", "size"), [(232, 7), (40, 5)])
def test_plain_conv_with_odd_channels_stays_vectorized(channels: int, size: int) -> None:
    n = Net(x=(1, 24, size, size))
    y = n("conv", "x", n.const(weights(channels, 24, 1, 1)), n.const(weights(channels)))
    graph = n.graph(y)
    func, inputs = compile_one(graph, 512)
    vec = vector_loops(func)
    assert vec and all(vectorizable(f) for f in vec)
    x = np.random.default_rng(2).standard_normal((1, 24, size, size)).astype(np.float32)
    np.testing.assert_allclose(run_one(graph, func, inputs, {"x": x}),
                               run_graph(graph, {"x": x})[y], rtol=1e-4, atol=1e-4)

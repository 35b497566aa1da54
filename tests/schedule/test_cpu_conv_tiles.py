"""The default CPU schedule of blocked convs: the output-channel block as vector lanes, a
register tile along the output row with no guarded tail, and the numbers kept."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.backends.llvm.codegen import emit_module
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
from deepc.ir.loop import For, ForKind, IfThenElse, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.passes.support import Net, weights

CASES = [(16, 16, 14, 1), (16, 16, 13, 1), (16, 16, 12, 16), (8, 16, 28, 1)]


@pytest.mark.parametrize(("c", "o", "width", "group"), CASES)
def test_blocked_conv_tile(c: int, o: int, width: int, group: int) -> None:
    lanes = 8
    n = Net(x=(1, c // lanes, 6, width, lanes))
    w = weight_to_blocked(weights(o, c // group, 3, 3), lanes, lanes, group > 1)
    y = n("relu", n("conv_nchwc", "x", n.const(w), n.const(weights(o)), pads=(1, 1, 1, 1),
                    group=group))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    func = default_schedule(kernel.func, CpuMachine(256, 12, 1, 32, 512)).apply(kernel.func)
    loops = [s for s in walk_stmts(func.body) if isinstance(s, For)]
    vec = [f for f in loops if f.kind is ForKind.VECTORIZED and f.var.name.startswith("conv_nc")]
    assert vec and all(f.extent == lanes for f in vec)
    tile = [f for f in loops if f.kind is ForKind.UNROLLED]
    assert tile and max(f.extent for f in tile) >= 4  # independent accumulators
    assert not any(isinstance(s, IfThenElse) for s in walk_stmts(func.body))
    x = np.random.default_rng(0).standard_normal((1, c, 6, width)).astype(np.float32)
    feeds = {"x": block_array(x, lanes)}
    args = [feeds["x"], *(graph.constants[i] for i in kernel.inputs[1:])]
    out = np.zeros(graph.types[y].shape, np.float32)
    jit = JitModule(optimize(emit_module([func]), MachineSpec.host()))
    jit.kernel(func.name, len(args) + 1)(*[np.ascontiguousarray(a).ctypes.data
                                           for a in [*args, out]])
    np.testing.assert_allclose(out, run_graph(graph, feeds)[y], rtol=1e-5, atol=1e-5)

"""The LLVM backend's vector loops over a select whose test is the same on every lane (a
concat choosing its input by an outer loop, densenet's dense blocks): vectors that branch
to the one input read, where they used to fall back to one scalar per element."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.backends.llvm.codegen import vectorizable
from deepc.ir.expr import Const, Load, Select, Var, binary
from deepc.ir.loop import Buffer, For, ForKind, Store
from deepc.ops.interpreter import run_graph
from tests.passes.support import Net, weights
from tests.schedule.test_cpu_conv_widths import compile_one, run_one, vector_loops


def _loop(cond_on_lane: bool) -> For:
    a, b, out = (Buffer(n, (4, 16), "float32") for n in ("a", "b", "out"))
    i, j = Var("i"), Var("j")
    cond = binary("lt", j if cond_on_lane else i, Const(2, "int64"))
    value = Select(cond, Load(a, (i, j)), Load(b, (i, j)))
    return For(j, 16, ForKind.VECTORIZED, Store(out, (i, j), value))


def test_only_a_lane_varying_test_keeps_the_loads_scalar() -> None:
    assert vectorizable(_loop(cond_on_lane=False))
    assert not vectorizable(_loop(cond_on_lane=True))


@pytest.mark.parametrize("vector_bits", [512, 256])
def test_channel_concat_with_scale_and_relu_runs_as_vectors(vector_bits: int) -> None:
    """Concat of three blocked inputs on the channel-block axis, then a per-channel scale and
    ReLU (densenet's norm1 + relu1), as one kernel: vectorized, and the same numbers."""
    block = 16
    n = Net(x=(1, 2, 5, 7, block), y=(1, 1, 5, 7, block), z=(1, 3, 5, 7, block))
    cat = n("concat", "x", "y", "z", axis=1)
    scale = n.const(weights(1, 6, 1, 1, block))
    out = n("relu", n("mul", cat, scale))
    graph = n.graph(out)
    func, inputs = compile_one(graph, vector_bits)
    vec = vector_loops(func)
    assert vec and all(vectorizable(f) for f in vec)
    rng = np.random.default_rng(0)
    feeds = {k: rng.standard_normal(graph.types[k].shape).astype(np.float32)
             for k in ("x", "y", "z")}
    np.testing.assert_allclose(run_one(graph, func, inputs, feeds), run_graph(graph, feeds)[out],
                               rtol=1e-6, atol=1e-6)

"""rnn_blocks: the time steps of a recurrence's input sums fitted to the target's vector
registers (4 on AVX-512's 32, 2 on AVX2's 16), the numbers unchanged."""

from __future__ import annotations

import numpy as np

from deepc.compiler.jit_graph import run_graph_jit
from deepc.frontends.onnx import convert
from deepc.ir.loop import Allocate, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.passes.manager import PassContext
from deepc.passes.rnn_blocks import rnn_blocks, step_block
from deepc.target import load_target
from tests.helpers import node_model
from tests.ops.test_rnn import HIDDEN, inputs


def test_steps_fit_the_registers() -> None:
    # 4 rows x s steps of accumulators + 4 W vectors + s x vectors
    assert step_block(32) == 4  # 24 registers
    assert step_block(16) == 2  # 14; 3 steps would take 19
    assert step_block(8) == 1


def _graph():  # type: ignore[no-untyped-def]
    ins = inputs("LSTM", 1, seq=8)
    model = node_model("LSTM", ins, 3, hidden_size=HIDDEN)
    feeds = {k: v for k, v in ins.items() if v is not None}
    return convert(model, {k: v.shape for k, v in feeds.items()}), feeds


def _accumulators(graph) -> int:  # type: ignore[no-untyped-def]
    (kernel,) = graph_kernels(graph)
    return max(s.buffer.shape[0] for s in walk_stmts(kernel.func.body)
               if isinstance(s, Allocate) and s.buffer.name.endswith("_acc"))


def test_avx2_takes_two_steps_avx512_four() -> None:
    graph, feeds = _graph()
    narrow = rnn_blocks(graph, PassContext(target=load_target("x86_64")))
    assert narrow.nodes[0].attr("step_block") == 2
    wide = rnn_blocks(graph, PassContext(target=load_target("x86_64-avx512")))
    assert wide is graph  # the op's own default
    # 4 rows x 2 steps (the recurrent pass's 8 rows take as many) where 4 x 4 took 16
    assert (_accumulators(narrow), _accumulators(graph)) == (8, 16)
    got, want = run_graph_jit(narrow, feeds), run_graph_jit(graph, feeds)
    for name in graph.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)

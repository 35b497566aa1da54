"""`rnn_blocks`: recurrent ops (lstm, gru, rnn) -> the same ops with `step_block`, the time
steps whose input sums share each load of W, fitted to the target's vector registers.

The input pass of a recurrence (ops/rnn_loops.py) keeps ROW_BLOCK gate rows x `step_block`
steps of accumulators in one pass over the input features, which LLVM vectorizes: that many
vector accumulators, plus a W vector per row and an x vector per step, live at once. 4 x 4
(24 registers) fit AVX-512's 32; on AVX2's 16 they spilled 45 vectors per kernel, and 4 x 2
(14) runs the shared lstm 1.15-1.22 -> 1.08 of onnxruntime on a Zen 3 (1 thread). The op
keeps its default (STEP_BLOCK) where the target's registers hold it.
"""

from __future__ import annotations

from deepc.ir.graph import Graph, Node
from deepc.ops.rnn_loops import ROW_BLOCK, STEP_BLOCK
from deepc.passes.manager import PassContext, register_pass
from deepc.target.host import vector_registers_of
from deepc.target.sections import VECTOR_KINDS

RECURRENT_OPS = ("lstm", "gru", "rnn")


def step_block(registers: int) -> int:
    """The most steps (up to STEP_BLOCK, at least 1) whose accumulators, with the operands
    of one pass step, fit `registers`."""
    fits = [s for s in range(1, STEP_BLOCK + 1) if ROW_BLOCK * s + ROW_BLOCK + s <= registers]
    return max(fits, default=1)


@register_pass("rnn_blocks")
def rnn_blocks(graph: Graph, ctx: PassContext) -> Graph:
    target = ctx.target
    if target is None or getattr(target, "kind", "cpu") not in VECTOR_KINDS:
        return graph
    steps = step_block(vector_registers_of(target.triple, target.features))
    if steps >= STEP_BLOCK:
        return graph
    nodes = [Node(n.op, n.inputs, n.outputs, n.attrs.with_(step_block=steps), n.name)
             if n.op in RECURRENT_OPS else n for n in graph.nodes]
    return graph.replace(nodes=tuple(nodes))

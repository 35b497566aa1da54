"""Run a graph node by node through compiled kernels (lowering + LLVM JIT), for tests.

Every node becomes one kernel of its compute definition; intermediate values live in numpy
arrays. It exercises lowering and code generation without the execution planner.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepc.ir.graph import Graph
from deepc.ir.loop_verify import verify_func
from deepc.ir.lower import lower
from deepc.ir.types import np_dtype
from deepc.lowering.te_graph import node_outputs, node_placeholders


def run_graph_jit(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
    from deepc.ops.interpreter import check_inputs

    values: dict[str, np.ndarray] = dict(graph.constants)
    values.update(check_inputs(graph, inputs))
    for k, node in enumerate(graph.nodes):
        ins = node_placeholders(graph, node)
        named = node_outputs(graph, node, ins)
        outs_named, outs = list(named), list(named.values())
        out_types = [graph.types[o] for o in outs_named]
        present = [t for t in ins if t is not None]
        func = verify_func(lower(present, outs, f"k{k}_{node.op}"))
        host = MachineSpec.host()
        jit = JitModule(optimize(emit_module([func], triple=host.triple), host))
        args = [np.ascontiguousarray(values[name]) for t, name in zip(ins, node.inputs)
                if t is not None]
        results = [np.zeros(t.shape, np_dtype(t.dtype)) for t in out_types]
        kernel = jit.kernel(func.name, len(args) + len(results))
        kernel(*[a.ctypes.data for a in args + results])
        for name, value in zip(outs_named, results):
            values[name] = value
    return {name: values[name] for name in graph.outputs}

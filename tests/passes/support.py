"""What the pass tests share: small graphs built op by op, and `check_pass`, which runs one
pass, verifies its result and compares the interpreter's numbers before and after."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.ir.graph import Graph
from deepc.ir.types import TensorType
from deepc.ops.interpreter import run_graph
from deepc.passes import PASSES, PassContext
from deepc.passes.verify import verify_graph
from deepc.runtime.inputs import random_inputs

RNG = np.random.default_rng(0)


def weights(*shape: int, dtype: str = "float32") -> np.ndarray:
    return (RNG.standard_normal(shape) * 0.5).astype(dtype)


class Net:
    """A graph under construction: float inputs, constants, and nodes emitted unfolded."""

    def __init__(self, **inputs: tuple[int, ...]):
        self.b = GraphBuilder("t")
        for name, shape in inputs.items():
            self.b.add_input(name, TensorType(shape, "float32"))

    def const(self, value: Any, name: str | None = None, dtype: Any = None) -> str:
        return self.b.add_constant(np.asarray(value, dtype=dtype), name)

    def __call__(self, op: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        outs = None if out is None else [out]
        return self.b.emit(op, list(inputs), attrs, outputs=outs, fold=False)[0]

    def multi(self, op: str, *inputs: str, n: int, **attrs: Any) -> tuple[str, ...]:
        return self.b.emit(op, list(inputs), attrs, num_outputs=n, fold=False)

    def graph(self, *outputs: str) -> Graph:
        self.b.outputs = list(outputs)
        return verify_graph(self.b.build())


def check_pass(graph: Graph, name: str, ctx: PassContext | None = None, *, rtol: float = 1e-5,
               atol: float = 1e-5, seeds: Sequence[int] = (0, 1)) -> Graph:
    """Run pass `name` on a verified graph; the result must verify, keep the inputs and
    outputs, and compute the same numbers on random inputs."""
    verify_graph(graph)
    after = verify_graph(PASSES[name](graph, ctx or PassContext()))
    assert after.inputs == graph.inputs and after.outputs == graph.outputs
    for seed in seeds:
        feeds = random_inputs(graph, seed=seed)
        assert_same(run_graph(after, feeds), run_graph(graph, feeds), rtol, atol)
    return after


def assert_same(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray], rtol: float,
                atol: float) -> None:
    assert got.keys() == want.keys()
    for key, expected in want.items():
        assert got[key].dtype == expected.dtype and got[key].shape == expected.shape, key
        np.testing.assert_allclose(got[key], expected, rtol=rtol, atol=atol, err_msg=key)


def ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]

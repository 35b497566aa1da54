"""The pass manager: a registry of graph passes and the -O pipelines as lists of names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepc.ir.graph import Graph
from deepc.ir.verify import verify_graph


@dataclass
class PassContext:
    opt_level: int = 2
    disabled: frozenset[str] = frozenset()
    print_after: frozenset[str] = frozenset()
    dumps: list[tuple[str, str]] = field(default_factory=list)
    times: list[tuple[str, float]] = field(default_factory=list)
    verify: bool = True
    target: Any = None  # the deepc.target.Target compiled for, when known


GraphPass = Callable[[Graph, PassContext], Graph]
PASSES: dict[str, GraphPass] = {}
PIPELINES: dict[int, list[str]] = {0: [], 1: ["dce"], 2: ["dce", "kernel_layout", "fuse"],
                                   3: ["dce", "kernel_layout", "fuse"]}


def register_pass(name: str) -> Callable[[GraphPass], GraphPass]:
    def deco(fn: GraphPass) -> GraphPass:
        PASSES[name] = fn
        return fn

    return deco


def run_pipeline(graph: Graph, opt_level: int = 2, ctx: PassContext | None = None) -> Graph:
    import time

    from deepc.ir.text import graph_to_text

    ctx = ctx or PassContext(opt_level)
    for name in PIPELINES[opt_level]:
        if name in ctx.disabled:
            continue
        start = time.perf_counter()
        graph = PASSES[name](graph, ctx)
        ctx.times.append((name, time.perf_counter() - start))
        if ctx.verify:
            verify_graph(graph)
        if name in ctx.print_after:
            ctx.dumps.append((name, graph_to_text(graph, constants=False)))
    return graph


@register_pass("dce")
def dead_code_elimination(graph: Graph, ctx: PassContext) -> Graph:
    """Drop nodes none of whose outputs reach a graph output, and unused constants."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs if o):
            kept.append(node)
            live.update(i for i in node.inputs if i)
    kept.reverse()
    constants = {k: v for k, v in graph.constants.items() if k in live}
    defined = set(graph.inputs) | set(constants) | {o for n in kept for o in n.outputs if o}
    types = {k: v for k, v in graph.types.items() if k in defined}
    return graph.replace(nodes=tuple(kept), constants=constants, types=types)

"""The pass manager: a registry of graph passes and the -O pipelines as lists of names."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from deepc.errors import DeepcError, UnknownPassError, VerifyError
from deepc.ir.graph import Graph
from deepc.ir.text import graph_to_text
from deepc.passes.verify import verify_graph

PRINT_AFTER_ENV = "DEEPC_PRINT_AFTER"  # comma-separated pass names, added to print_after
FOLD_MAX_BYTES = 64 << 20  # fold never stores a constant larger than this
FOLD_GROWTH_MAX_BYTES = 1 << 20  # nor one this large that outgrows the op's inputs


def print_after_from_env() -> frozenset[str]:
    return frozenset(n.strip() for n in os.environ.get(PRINT_AFTER_ENV, "").split(",")
                     if n.strip())


@dataclass
class PassContext:
    """Options that reach every pass, and what the pipeline reports back.

    `print_after` starts with the names in $DEEPC_PRINT_AFTER; after each pass so named the
    canonical text of the graph (without constant values) is appended to `dumps`. `times`
    gets (pass name, seconds) for every pass run.
    """

    opt_level: int = 2
    disabled: frozenset[str] = frozenset()
    print_after: frozenset[str] = frozenset()
    dumps: list[tuple[str, str]] = field(default_factory=list)
    times: list[tuple[str, float]] = field(default_factory=list)
    verify: bool = True
    target: Any = None  # the deepc.target.Target compiled for, when known
    fold_max_bytes: int = FOLD_MAX_BYTES
    fold_growth_max_bytes: int = FOLD_GROWTH_MAX_BYTES

    def __post_init__(self) -> None:
        self.disabled = frozenset(self.disabled)
        self.print_after = frozenset(self.print_after) | print_after_from_env()


GraphPass = Callable[[Graph, PassContext], Graph]
PASSES: dict[str, GraphPass] = {}

# The -O levels as lists of pass names, resolved when a pipeline runs, so a pass may live in
# any module of deepc.passes (all of them are imported by the package).
SIMPLIFY = ["fold", "cse", "simplify", "cse", "dce"]  # simplify exposes more to merge
PIPELINES: dict[int, list[str]] = {
    0: [],  # nothing is needed for correctness: the imported graph compiles as it is
    1: ["fold_qdq", "fold", "dce"],  # fold_qdq first: fold would dequantize the weights
    2: ["fold_qdq", *SIMPLIFY, "qdq_glue",
        # -- layout and fusion passes (they read the target; fuse stays last) --
        "nchwc_layout", "kernel_layout", "rnn_blocks", "gemm_pad", "fuse"],
    3: ["fold_qdq", *SIMPLIFY, "qdq_glue",
        # -- layout and fusion passes; -O3-only ones join here --
        "nchwc_layout", "kernel_layout", "rnn_blocks", "gemm_pad", "fuse"],
}


def register_pass(name: str) -> Callable[[GraphPass], GraphPass]:
    def deco(fn: GraphPass) -> GraphPass:
        if name in PASSES and PASSES[name] is not fn:
            raise ValueError(f"pass {name!r} registered twice")
        PASSES[name] = fn
        return fn

    return deco


def check_pass_names(names: Iterable[str]) -> None:
    """Raise UnknownPassError (one line, listing the known passes) for an unknown name."""
    unknown = sorted(set(names) - set(PASSES))
    if unknown:
        raise UnknownPassError(f"unknown pass{'es' if len(unknown) > 1 else ''} "
                               f"{', '.join(unknown)}; known passes: {', '.join(sorted(PASSES))}")


def run_pipeline(graph: Graph, opt_level: int = 2, ctx: PassContext | None = None) -> Graph:
    """Run the -O`opt_level` pipeline over `graph`, minus `ctx.disabled`; with `ctx.verify`
    the verifier checks the graph after every pass."""
    ctx = ctx or PassContext(opt_level)
    if opt_level not in PIPELINES:
        raise DeepcError(f"no optimisation level -O{opt_level}; levels are "
                         f"{', '.join(f'-O{k}' for k in sorted(PIPELINES))}")
    check_pass_names([*PIPELINES[opt_level], *ctx.disabled, *ctx.print_after])
    for name in PIPELINES[opt_level]:
        if name in ctx.disabled:
            continue
        start = time.perf_counter()
        graph = PASSES[name](graph, ctx)
        ctx.times.append((name, time.perf_counter() - start))
        if ctx.verify:
            try:
                verify_graph(graph)
            except VerifyError as exc:
                raise VerifyError(f"after pass {name!r}: {exc}") from None
        if name in ctx.print_after:
            ctx.dumps.append((name, graph_to_text(graph, constants=False)))
    return graph

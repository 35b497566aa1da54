"""Runs of a loaded bundle kernel by kernel: when each kernel started and how long it took in
every run (CPU kernels by the wall clock around each call, CUDA launches by events between
them), with what each kernel is (ops, shapes, FLOPs) for a trace viewer to show."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepc.runtime.profile import kernel_calls, kernel_flops

Span = tuple[float, float]  # (start, duration) in microseconds; start from the first run's


@dataclass(frozen=True)
class KernelRuns:
    """`spans[r][k]`: kernel k of `kernels` (plan order) in timed run r. On CUDA,
    `launches[r][k]` holds the microseconds of each of that kernel's launches."""

    model: str
    device: str  # "cpu" | "cuda"
    threads: int
    kernels: list[dict[str, Any]]
    spans: list[list[Span]]
    launches: list[list[list[float]]] = field(default_factory=list)
    thread: int = 0  # CPU: the OS thread that called the kernels (each fans out to the pool)


def kernel_info(graph: Any, kern: Any) -> dict[str, Any]:
    """What a kernel is, as JSON: its name, ops and graph nodes, its values' shapes, FLOPs."""
    def shapes(values: tuple[str, ...]) -> list[list[int]]:
        return [list(graph.types[v].shape) for v in values]

    return {"kernel": kern.name, "ops": list(kern.ops), "nodes": list(kern.nodes),
            "inputs": shapes(kern.inputs), "outputs": shapes(kern.outputs),
            "dtype": graph.types[kern.outputs[0]].dtype if kern.outputs else "",
            "flops": kernel_flops(graph, kern)}


def trace_runs(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray], runs: int,
               warmup: int = 2) -> KernelRuns:
    """`runs` runs of the bundle `model` (loaded from `compiled`), each kernel timed, after
    `warmup` untimed ones."""
    info = [kernel_info(compiled.graph, k) for k in compiled.plan.calls]
    name = compiled.graph.name
    if compiled.target.kind == "cuda":
        return _trace_cuda(model, compiled, feeds, runs, warmup, info)
    calls = kernel_calls(model, compiled, feeds)
    for _ in range(warmup):
        for _, call in calls:
            call()
    spans: list[list[Span]] = []
    origin = time.perf_counter()
    for _ in range(runs):
        run = []
        for _, call in calls:
            start = time.perf_counter()
            call()
            end = time.perf_counter()
            run.append(((start - origin) * 1e6, (end - start) * 1e6))
        spans.append(run)
    return KernelRuns(name, "cpu", model.num_threads, info, spans,
                      thread=threading.get_native_id())


def _trace_cuda(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray], runs: int,
                warmup: int, info: list[dict[str, Any]]) -> KernelRuns:
    """A kernel's span runs from its first launch's start to its last one's end (a kernel of
    several stages launches them back to back on one stream)."""
    model.run(dict(feeds))
    launch_runs = model._library.trace_launches(runs, warmup)
    counts = [len(compiled.module.launches[k.name]) for k in compiled.plan.calls]
    spans, launches = [], []
    for run in launch_runs:
        first = 0
        kernel_spans, kernel_launches = [], []
        for n in counts:
            mine = run[first:first + n]
            first += n
            kernel_spans.append((mine[0][0], sum(d for _, d in mine)))
            kernel_launches.append([d for _, d in mine])
        spans.append(kernel_spans)
        launches.append(kernel_launches)
    return KernelRuns(compiled.graph.name, "cuda", 1, info, spans, launches)

"""Per-kernel profile of a loaded bundle: each kernel timed on its own, in plan order (CPU
kernels by wall clock; CUDA kernels' launches by CUDA events)."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from deepc.runtime.memory import aligned_array


@dataclass
class KernelCalls:
    """The planned kernels of an in-process CPU bundle bound to the plan's buffers, in call
    order: calling them all in turn is one run of the model."""

    kernels: list[Any]  # the plan's Kernels
    calls: list[Callable[[], None]]
    buffers: tuple[Any, ...]  # the inputs and outputs the calls point into, kept alive here

    def __iter__(self) -> Iterator[tuple[Any, Callable[[], None]]]:
        # a generator, so that iterating keeps this object (and `buffers`, which the calls
        # write into) alive: `for k, call in kernel_calls(...)` holds no other reference, and
        # freed output arrays written by the kernels corrupted the heap (bench --profile)
        yield from zip(self.kernels, self.calls)


def kernel_calls(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray]) -> KernelCalls:
    """Bind each kernel of `compiled`'s plan, loaded as `model`, to its buffers."""
    plan, graph = compiled.plan, compiled.graph
    native = model._library
    if native.emulated:
        from deepc.errors import InputError

        raise InputError("profiling times kernels in-process: it needs a bundle for this"
                         " machine (compile with --target host)")
    lib = native._lib  # the bundle's shared library
    outs = {n: aligned_array(graph.types[n].shape, graph.types[n].dtype) for n in graph.outputs}
    ins = {n: np.ascontiguousarray(feeds[n]) for n in graph.inputs}
    params, workspace = native._params.ctypes.data, native._workspace.ctypes.data

    def pointer(value: str) -> int:
        loc = plan.locations[value]
        if loc.kind in ("input", "output"):
            slot = graph.inputs if loc.kind == "input" else graph.outputs
            array = ins if loc.kind == "input" else outs
            return array[slot[loc.index]].ctypes.data + loc.offset
        return (params if loc.kind == "param" else workspace) + loc.offset

    calls = []
    for kern in plan.calls:
        fn = getattr(lib, kern.func.name)
        fn.restype = None
        calls.append(partial(fn, *[ctypes.c_void_p(pointer(v)) for v in kern.args]))
    return KernelCalls(list(plan.calls), calls, (ins, outs))


def profile_kernels(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray],
                    repeats: int = 10) -> list[dict[str, Any]]:
    """Time share and achieved GFLOP/s of every kernel (median of `repeats` calls), calling
    the bundle's exported kernels with the plan's buffers."""
    rows = []
    for kern, call in kernel_calls(model, compiled, feeds):
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        rows.append(_row(compiled.graph, kern, float(np.median(times))))
    return _shares(rows)


def profile_cuda(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray],
                 repeats: int = 20) -> list[dict[str, Any]]:
    """The same table for a CUDA bundle: a kernel's time is the sum of its launches' (each
    the median of `repeats` on its own), and `stages` lists those launches' notes (how each
    was mapped: tiled GEMM, warp reduction, one output per thread)."""
    model.run(dict(feeds))
    launch_ms = iter(model._library.time_launches(repeats))
    rows = []
    for kern in compiled.plan.calls:
        stages = compiled.module.launches[kern.name]
        ms = [next(launch_ms) for _ in stages]
        row = _row(compiled.graph, kern, sum(ms) / 1e3)
        row["stages"] = [{"ms": t, "note": s.note} for t, s in zip(ms, stages)]
        rows.append(row)
    return _shares(rows)


def kernel_flops(graph: Any, kern: Any) -> int:
    """Floating-point operations of one run of `kern`: its nodes' estimates summed."""
    from deepc.ops import get_op

    flops = 0
    for node in graph.nodes:
        if node.name in kern.nodes:
            op_ins = [graph.types[i] if i else None for i in node.inputs]
            op_outs = [graph.types[o] for o in node.outputs if o]
            flops += get_op(node.op).estimate_flops(op_ins, op_outs, node.attrs)
    return flops


def _row(graph: Any, kern: Any, seconds: float) -> dict[str, Any]:
    flops = kernel_flops(graph, kern)
    return {"kernel": kern.name, "ops": list(kern.ops), "ms": seconds * 1e3,
            "gflops": flops / seconds / 1e9 if seconds > 0 else 0.0}


def _shares(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    total = sum(r["ms"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["ms"] / total
    return rows

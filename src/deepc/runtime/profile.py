"""Per-kernel profile of a loaded CPU bundle: each kernel timed on its own, in plan order."""

from __future__ import annotations

import ctypes
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepc.runtime.memory import aligned_array


def profile_kernels(model: Any, compiled: Any, feeds: Mapping[str, np.ndarray],
                    repeats: int = 10) -> list[dict[str, Any]]:
    """Time share and achieved GFLOP/s of every kernel (median of `repeats` calls), calling
    the bundle's exported kernels with the plan's buffers."""
    from deepc.ops import get_op

    plan, graph = compiled.plan, compiled.graph
    native = model._library
    if native.emulated:
        from deepc.errors import DeepcError

        raise DeepcError("--profile times kernels in-process: it needs a bundle for this"
                         " machine (compile with --target host)")
    lib = native._lib  # the bundle's shared library
    outs = {n: aligned_array(graph.types[n].shape, graph.types[n].dtype) for n in graph.outputs}
    ins = {n: np.ascontiguousarray(feeds[n]) for n in graph.inputs}
    params, workspace = native._params.ctypes.data, native._workspace.ctypes.data

    def pointer(value: str) -> int:
        loc = plan.locations[value]
        if loc.kind == "input":
            return ins[value].ctypes.data
        if loc.kind == "output":
            return outs[value].ctypes.data
        return (params if loc.kind == "param" else workspace) + loc.offset

    rows = []
    for kern in plan.calls:
        fn = getattr(lib, kern.func.name)
        fn.restype = None
        args = [ctypes.c_void_p(pointer(v)) for v in kern.args]
        fn(*args)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - start)
        flops = 0
        for node in graph.nodes:
            if node.name in kern.nodes:
                op_ins = [graph.types[i] if i else None for i in node.inputs]
                op_outs = [graph.types[o] for o in node.outputs if o]
                flops += get_op(node.op).estimate_flops(op_ins, op_outs, node.attrs)
        seconds = float(np.median(times))
        rows.append({"kernel": kern.name, "ops": list(kern.ops), "ms": seconds * 1e3,
                     "gflops": flops / seconds / 1e9 if seconds > 0 else 0.0})
    total = sum(r["ms"] for r in rows) or 1.0
    for r in rows:
        r["share"] = r["ms"] / total
    return rows

"""A model and a target into what the report shows: the compiled model, each kernel's
description, the passes' times and, where the bundle runs in this process, each kernel's
median time over timed runs (and onnxruntime's per-node profile beside it)."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepc.errors import DeepcError, InputError
from deepc.runtime.kernel_trace import KernelRuns, kernel_info, trace_runs

PEERS = ("onnxruntime", "none")


@dataclass
class ReportData:
    model: str
    compiled: Any  # deepc.compiler.model.CompiledModel
    info: dict[str, dict[str, Any]]  # kernel name -> kernel_trace.kernel_info
    pass_times: list[tuple[str, float]]
    onnx_nodes: int  # in the file, before any pass
    onnx_ops: dict[str, str]  # the file's named nodes: name -> ONNX op type
    runs: int = 0
    threads: int = 0
    times: dict[str, dict[str, float]] = field(default_factory=dict)  # kernel -> ms/share/gflops
    timing_note: str = ""  # why the kernels were not timed
    peer_name: str = ""
    peer: list[dict[str, Any]] = field(default_factory=list)  # peer.onnxruntime_nodes


def collect(path: str | Path, target: Any = "host", *, runs: int = 20, warmup: int = 3,
            compare: str = "none", threads: int = 0, opt_level: int = 2,
            input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ReportData:
    """Compile `path` for `target`; time its kernels (and `compare`'s nodes) where it runs here."""
    import deepc
    from deepc.frontends.onnx import read_model
    from deepc.passes import PassContext

    path = Path(path)
    if compare not in PEERS:
        raise InputError(f"--compare {compare!r}: the report compares with "
                         f"{' or '.join(PEERS)}")
    ctx = PassContext(opt_level)
    compiled = deepc.compile(path, target, opt_level=opt_level, pass_context=ctx,
                             input_shapes=input_shapes)
    graph = compiled.graph
    onnx_graph = read_model(path).graph
    data = ReportData(path.stem, compiled, {k.name: kernel_info(graph, k) for k in
                                            compiled.kernels},
                      list(ctx.times), len(onnx_graph.node),
                      {n.name: n.op_type for n in onnx_graph.node if n.name})
    traced = _trace(compiled, runs, warmup, threads, data)
    if traced is None:
        return data
    data.runs, data.threads = runs, traced.threads
    data.times = kernel_times(traced)
    if compare == "onnxruntime":
        from deepc.report.peer import onnxruntime_nodes
        from deepc.runtime.inputs import random_inputs

        data.peer_name = "onnxruntime"
        data.peer = onnxruntime_nodes(path, random_inputs(graph, 0), runs, warmup,
                                      traced.threads)
    return data


def _trace(compiled: Any, runs: int, warmup: int, threads: int,
           data: ReportData) -> KernelRuns | None:
    """Timed runs where the bundle runs in this process; else None, with the reason noted."""
    import deepc
    from deepc.runtime.inputs import random_inputs

    kind = compiled.target.kind
    if kind not in ("cpu", "cuda"):
        data.timing_note = (f"not timed: kernels are timed in this process (on this machine's"
                            f" CPU or a CUDA GPU); bundles for {compiled.target.name}"
                            f" ({kind}) run elsewhere")
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="deepc-report-") as tmp:
            model = deepc.load(compiled.save(Path(tmp) / "model.tar"))
        if model.emulated:
            data.timing_note = (f"not timed: the bundle for {compiled.target.name} runs under"
                                f" `{model.emulator}` here, not in this process")
            return None
        model.set_num_threads(threads)
        return trace_runs(model, compiled, random_inputs(compiled.graph, 0), runs, warmup)
    except DeepcError as e:  # no GPU or driver here: the report shows what was compiled
        data.timing_note = f"not timed: {e}"
        return None


def kernel_times(traced: KernelRuns) -> dict[str, dict[str, float]]:
    """Each kernel's median time over the runs, its share of their sum, its GFLOP/s."""
    medians = [statistics.median(run[k][1] for run in traced.spans) / 1e3
               for k in range(len(traced.kernels))]
    total = sum(medians) or 1.0
    return {info["kernel"]: {"ms": ms, "share": ms / total,
                             "gflops": info["flops"] / ms / 1e6 if ms > 0 else 0.0}
            for info, ms in zip(traced.kernels, medians)}

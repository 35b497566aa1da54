"""Timed kernel runs (runtime/kernel_trace.KernelRuns) into Chrome trace JSON: complete events
that Perfetto and chrome://tracing open as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepc.runtime.kernel_trace import KernelRuns


def chrome_trace(traced: Sequence[KernelRuns]) -> dict[str, Any]:
    """One process per traced model; per timed run, a `run` event and inside it one `kernel`
    event per kernel (CUDA: and one `launch` event per launch inside its kernel's)."""
    events: list[dict[str, Any]] = []
    for pid, runs in enumerate(traced, start=1):
        tid = runs.thread
        where = f"{runs.threads} thread{'s' if runs.threads != 1 else ''}" \
            if runs.device == "cpu" else "one stream"
        events += [_meta("process_name", pid, f"deepc {runs.model} ({runs.device}, {where})"),
                   _meta("thread_name", pid, "kernels" if runs.device == "cpu" else "stream",
                         tid)]
        for r, spans in enumerate(runs.spans):
            first, last = spans[0], spans[-1]
            events.append({"name": f"run {r}", "cat": "run", "ph": "X", "ts": _us(first[0]),
                           "dur": _us(last[0] + last[1] - first[0]), "pid": pid, "tid": tid,
                           "args": {"run": r, "kernels": len(spans)}})
            for k, (start, dur) in enumerate(spans):
                events.append(_kernel_event(runs.kernels[k], r, start, dur, pid, tid))
                if runs.launches:
                    events += _launch_events(runs.kernels[k]["kernel"], start,
                                             runs.launches[r][k], pid, tid)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _meta(what: str, pid: int, name: str, tid: int = 0) -> dict[str, Any]:
    return {"name": what, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def _kernel_event(info: dict[str, Any], run: int, start: float, dur: float, pid: int,
                  tid: int) -> dict[str, Any]:
    args = {"run": run, "ops": ",".join(info["ops"]), "nodes": ",".join(info["nodes"]),
            "inputs": _shapes(info["inputs"]), "outputs": _shapes(info["outputs"]),
            "dtype": info["dtype"], "flops": info["flops"],
            "gflops": round(info["flops"] / dur / 1e3, 3) if dur > 0 else 0.0}
    return {"name": info["kernel"], "cat": "kernel", "ph": "X", "ts": _us(start), "dur": _us(dur),
            "pid": pid, "tid": tid, "args": args}


def _launch_events(kernel: str, start: float, durations: list[float], pid: int,
                   tid: int) -> list[dict[str, Any]]:
    """A kernel's launches follow one another on its stream: each starts where the last ended."""
    events = []
    for k, dur in enumerate(durations):
        events.append({"name": f"{kernel} launch {k}", "cat": "launch", "ph": "X",
                       "ts": _us(start), "dur": _us(dur), "pid": pid, "tid": tid,
                       "args": {"launch": k}})
        start += dur
    return events


def _shapes(shapes: list[list[int]]) -> str:
    return " ".join("x".join(map(str, s)) or "scalar" for s in shapes)


def _us(value: float) -> float:
    return round(value, 3)  # nanoseconds: finer than either clock resolves

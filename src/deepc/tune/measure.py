"""Measuring candidates: a kernel's scheduled function timed in isolation, in a worker process
(so a crash or a hang costs the candidate, not the run), with its outputs for checking."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.ir.loop import PrimFunc


@dataclass
class Measurement:
    cost: float | None  # seconds per call, median of the timed batches
    error: str | None = None
    outputs: list[np.ndarray] | None = None  # every buffer after one call on seeded inputs


def check_outputs(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> str | None:
    """None when a candidate's buffers match the default schedule's (up to the rounding of
    reordered reductions), else what differs."""
    for k, (a, b) in enumerate(zip(got, want)):
        scale = float(np.nanmax(np.abs(b))) if b.size and b.dtype.kind == "f" else 1.0
        if not np.allclose(a, b, rtol=1e-4, atol=1e-4 * max(scale, 1.0), equal_nan=True):
            diff = float(np.nanmax(np.abs(a.astype(np.float64) - b)))
            return f"wrong result: buffer {k} differs from the default's by up to {diff:.3g}"
    return None


def time_kernel(func: PrimFunc, steps: list[list[Any]], spec: Any, threads: int,
                min_time: float, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """Schedule, compile (LLVM JIT) and time one kernel on seeded random buffers."""
    from deepc.backends.link import load_runtime_for_jit
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, optimize
    from deepc.ir.loop_verify import verify_func
    from deepc.ir.types import np_dtype
    from deepc.schedule.schedule import Schedule

    f = verify_func(Schedule.from_list(steps).apply(func))
    jit = JitModule(optimize(emit_module([f]), spec))
    if threads:
        load_runtime_for_jit().deepc_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    bufs = []
    for b in f.params:
        dtype = np_dtype(b.dtype)
        # integer buffers (indices) stay zero: always in bounds
        data = rng.standard_normal(b.shape) if dtype.kind == "f" else np.zeros(b.shape)
        bufs.append(np.ascontiguousarray(data.astype(dtype)))
    kernel = jit.kernel(f.name, len(bufs))
    ptrs = [b.ctypes.data for b in bufs]
    kernel(*ptrs)
    outputs = [b.copy() for b in bufs]
    times: list[float] = []
    spent, number = 0.0, 1
    while spent < min_time or len(times) < 3:
        start = time.perf_counter()
        for _ in range(number):
            kernel(*ptrs)
        elapsed = time.perf_counter() - start
        spent += elapsed
        times.append(elapsed / number)
        if elapsed < min_time / 10:
            number *= 2
    return float(np.median(times)), outputs


def _serve(conn: Any) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        fn, args = job
        try:
            conn.send(("ok", fn(*args)))
        except Exception as e:  # any failure is the candidate's error
            conn.send(("error", f"build failed: {type(e).__name__}: {e}".splitlines()[0]))


class WorkerMeasurer:
    """Times candidates in a worker process: `job` says which module-level function (it
    returns the cost and the outputs) with which arguments."""

    timeout = 20.0

    def job(self, task: Any, knobs: dict[str, Any],
            steps: list[list[Any]]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        raise NotImplementedError

    _proc: Any = None
    _conn: Any = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self._proc.start()

    def measure(self, task: Any, knobs: dict[str, Any], steps: list[list[Any]]) -> Measurement:
        """One candidate of `task`: its knobs (or steps) on the task's function."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send(self.job(task, knobs, steps))
        # the first job of a fresh worker also pays for its imports
        if not self._conn.poll(self.timeout + 10):
            self.close()
            return Measurement(None, f"timeout: no result within {self.timeout:.0f} s")
        try:
            status, value = self._conn.recv()
        except (EOFError, ConnectionError):
            code = self._proc.exitcode
            self.close()
            return Measurement(None, f"crash: the kernel killed its worker (exit {code})")
        if status != "ok":
            return Measurement(None, value)
        cost, outputs = value
        return Measurement(cost, None, outputs)

    def close(self) -> None:
        if self._proc is not None and self._proc.pid is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(5)
        self._proc = self._conn = None


class LocalMeasurer(WorkerMeasurer):
    """Times kernels on this machine, for targets it can run natively."""

    def __init__(self, target: Any, threads: int = 1, timeout: float = 20.0,
                 min_time: float = 0.05):
        from deepc.backends.llvm.backend import machine_spec

        self.spec = machine_spec(target)
        self.threads, self.timeout, self.min_time = threads, timeout, min_time

    def job(self, task: Any, knobs: dict[str, Any],
            steps: list[list[Any]]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return time_kernel, (task.func, steps, self.spec, self.threads, self.min_time)

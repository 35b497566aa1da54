"""Measuring candidates: a kernel's scheduled function timed in isolation, in a worker process
(so a crash or a hang costs the candidate, not the run), with its outputs for checking."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.errors import ScheduleError
from deepc.ir.loop import PrimFunc


@dataclass
class Measurement:
    cost: float | None  # seconds per call, median of the timed batches
    error: str | None = None
    outputs: list[np.ndarray] | None = None  # every buffer after one call on seeded inputs
    control: float | None = None  # the default's seconds per call, timed in turns with it
    ratio: float | None = None  # candidate / default time, timed in turns


def check_outputs(got: Sequence[np.ndarray], want: Sequence[np.ndarray],
                  tolerance: float = 1e-4) -> str | None:
    """None when a candidate's buffers match the default schedule's (up to the rounding of
    reordered reductions: `tolerance`, relative and to the largest value), else what
    differs."""
    for k, (a, b) in enumerate(zip(got, want)):
        scale = float(np.nanmax(np.abs(b))) if b.size and b.dtype.kind == "f" else 1.0
        if not np.allclose(a, b, rtol=tolerance, atol=tolerance * max(scale, 1.0),
                           equal_nan=True):
            diff = float(np.nanmax(np.abs(a.astype(np.float64) - b)))
            return f"wrong result: buffer {k} differs from the default's by up to {diff:.3g}"
    return None


_CONTROLS: dict[str, Any] = {}  # the default's kernel per task, kept by the worker
BATCH_S = 5e-4  # a timed batch: well inside a time slice of a busy scheduler
MIN_TURNS = 12
LOW_PERCENTILE = 10


def time_kernel(func: PrimFunc, steps: list[list[Any]], spec: Any, threads: int,
                min_time: float, seed: int = 0, control: list[list[Any]] | None = None
                ) -> tuple[float, list[np.ndarray], float | None, float | None]:
    """Schedule, compile (LLVM JIT) and time one kernel on seeded random buffers: its time,
    its buffers after one call; with `control` (the default's steps) the default is timed
    in turns with it on the same buffers, so a busy spell on a shared machine slows both:
    also the default's time and the ratio of the two."""
    from deepc.backends.link import load_runtime_for_jit

    kernel, params = _jit(func, steps, spec)
    if threads:
        load_runtime_for_jit().deepc_set_num_threads(threads)
    rng = np.random.default_rng(seed)
    bufs = []
    for dtype, shape in params:
        # integer buffers (indices) stay zero: always in bounds
        data = rng.standard_normal(shape) if dtype.kind == "f" else np.zeros(shape)
        bufs.append(np.ascontiguousarray(data.astype(dtype)))
    ptrs = [b.ctypes.data for b in bufs]
    kernel(*ptrs)
    outputs = [b.copy() for b in bufs]
    # short batches, many of them, judged by a low percentile: on a shared machine a batch
    # longer than the scheduler's time slice is preempted on every run, and long batches in
    # strict turns fall into step with the preemptions (one side of every pair stalls)
    number = _calibrate(kernel, ptrs, BATCH_S)
    if control is None or control == steps:
        times: list[float] = []
        while sum(times) * number < min_time or len(times) < MIN_TURNS:
            times.append(_batch(kernel, ptrs, number))
        return _low(times), outputs, None, None
    key = f"{func.name}:{control!r}"
    if key not in _CONTROLS:
        _CONTROLS[key] = _jit(func, control, spec)[0]
    base = _CONTROLS[key]
    base(*ptrs)
    order = np.random.default_rng(seed)
    mine: list[float] = []
    theirs: list[float] = []
    while (sum(mine) + sum(theirs)) * number < 2 * min_time or len(mine) < MIN_TURNS:
        first = order.random() < 0.5  # which goes first in this turn, at random
        for candidate in (first, not first):
            (mine if candidate else theirs).append(
                _batch(kernel if candidate else base, ptrs, number))
    cost, default = _low(mine), _low(theirs)
    return cost, outputs, default, cost / max(default, 1e-12)


def _low(times: list[float]) -> float:
    """The time a batch takes when nothing preempts it (a low percentile: stalls only add)."""
    return float(np.percentile(times, LOW_PERCENTILE))


def _jit(func: PrimFunc, steps: list[list[Any]], spec: Any) -> tuple[Any, list[Any]]:
    """The scheduled kernel compiled, and its buffers' (dtype, shape)."""
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, optimize
    from deepc.ir.loop_verify import verify_func
    from deepc.ir.types import np_dtype
    from deepc.schedule.schedule import Schedule

    f = verify_func(Schedule.from_list(steps).apply(func))
    jit = JitModule(optimize(emit_module([f], triple=spec.triple), spec))
    return jit.kernel(f.name, len(f.params)), [(np_dtype(b.dtype), b.shape) for b in f.params]


def _batch(kernel: Any, ptrs: list[int], number: int) -> float:
    """Seconds per call over `number` calls in a row."""
    start = time.perf_counter()
    for _ in range(number):
        kernel(*ptrs)
    return (time.perf_counter() - start) / number


def _calibrate(kernel: Any, ptrs: list[int], least: float) -> int:
    """Calls per batch so that a batch lasts `least` seconds or more."""
    number = 1
    while _batch(kernel, ptrs, number) * number < least and number < 1 << 20:
        number *= 2
    return number


def _serve(conn: Any) -> None:
    while True:
        job = conn.recv()
        if job is None:
            return
        fn, args = job
        try:
            conn.send(("ok", fn(*args)))
        except ScheduleError as e:  # knobs that do not apply to the nest
            conn.send(("error", f"rejected: {e}".splitlines()[0]))
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
        cost, outputs, *control = value
        return Measurement(cost, None, outputs, *control)

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
        return time_kernel, (task.func, steps, self.spec, self.threads, self.min_time, 0,
                             task.default.to_list())

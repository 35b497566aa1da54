"""Measuring GPU candidates: one kernel's stages rendered as CUDA C with the candidate's knobs,
built by nvcc, launched on seeded buffers through pycuda in a worker process (a faulting
kernel takes its CUDA context down, not the run) and timed by CUDA events."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepc.backends.cuda.build import build_cubin
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import launch_of, render_stages
from deepc.ir.types import np_dtype
from deepc.runtime.cuda_model import cuda_driver
from deepc.tune.measure import WorkerMeasurer

# func, grid, block, argument buffers, bytes of dynamic shared memory
Launches = list[tuple[str, tuple[int, int, int], tuple[int, int, int], list[str], int]]
Buffers = list[tuple[str, tuple[int, ...], str]]  # name, shape, numpy dtype


def time_stages(source: str, target: Any, launches: Launches, buffers: Buffers, outputs: int,
                min_time: float, seed: int = 0) -> tuple[float, list[np.ndarray]]:
    """Build `source`, run its launches once on seeded buffers (the first `outputs` are the
    kernel's own, returned for checking; the rest scratch), then time them back to back:
    the median of batches of CUDA-event-timed repetitions, seconds per run."""
    cuda = cuda_driver()  # pycuda, imported here only: a worker on a machine with a GPU
    import pycuda.autoprimaryctx  # noqa: F401  (the context the runtime shares with torch)

    module = cuda.module_from_buffer(build_cubin(source, target))
    rng = np.random.default_rng(seed)
    host, device = {}, {}
    for name, shape, dtype in buffers:
        kind = np.dtype(dtype).kind
        # integer buffers (indices) stay zero: always in bounds
        data = rng.standard_normal(shape) if kind == "f" else np.zeros(shape)
        host[name] = np.ascontiguousarray(data.astype(dtype))
        device[name] = cuda.mem_alloc(max(host[name].nbytes, 1))
        cuda.memcpy_htod(device[name], host[name])
    calls = []
    for func, grid, block, args, shared in launches:
        fn = module.get_function(func)
        fn.prepare("P" * len(args))
        if shared:  # past 48 KiB a kernel must opt in to its dynamic shared memory
            fn.set_attribute(cuda.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, shared)
        calls.append((fn, grid, block, [int(device[a]) for a in args], shared))
    stream = cuda.Stream()

    def run() -> None:
        for fn, grid, block, args, shared in calls:
            fn.prepared_async_call(grid, block, stream, *args, shared_size=shared)

    run()
    stream.synchronize()
    got = []
    for name, _, _ in buffers[:outputs]:
        out = np.empty_like(host[name])
        cuda.memcpy_dtoh(out, device[name])
        got.append(out)
    start, end = cuda.Event(), cuda.Event()
    times: list[float] = []
    spent, number = 0.0, 1
    while spent < min_time or len(times) < 5:
        start.record(stream)
        for _ in range(number):
            run()
        end.record(stream)
        end.synchronize()
        elapsed = start.time_till(end) / 1e3
        spent += elapsed
        times.append(elapsed / number)
        if elapsed < min_time / 20:
            number *= 2
    return float(np.median(times)), got


class CudaMeasurer(WorkerMeasurer):
    """Times GPU tasks' candidates (tune.gpu_tasks.GpuTask) on this machine's CUDA GPU."""

    def __init__(self, target: Any, timeout: float = 60.0, min_time: float = 0.05):
        self.target, self.timeout, self.min_time = target, timeout, min_time

    def job(self, task: Any, knobs: dict[str, Any], steps: list[list[Any]]) -> tuple[Any, ...]:
        """Rendering happens here (ScheduleError is the caller's to log); building, loading
        and timing in the worker."""
        del steps  # a GPU candidate is rebuilt from its knobs
        stages, scratch = task.stages(knobs)
        kernel = task.lowered
        source = render_stages([kernel], {kernel.name: stages}, CUDA)
        params = [*kernel.func.params, *scratch]
        buffers = [(b.name, tuple(b.shape), np.dtype(np_dtype(b.dtype)).str) for b in params]
        launches = [(s.func.name, s.grid, s.block, [b.name for b in s.func.params],
                     launch_of(s).shared) for s in stages]
        return time_stages, (source, self.target, launches, buffers, len(kernel.func.params),
                             self.min_time)


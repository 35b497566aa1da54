"""A CUDA bundle to a runnable model: the cubin loaded through pycuda, launched from its plan.

Params are uploaded once into one device arena; a run copies the inputs in, replays the
launch sequence (captured once in a CUDA graph, so a run costs one launch of host work; a
loop of prepared launches where capture is unavailable) and copies the outputs back.
pycuda is an optional extra (`pip install deepc[cuda]`), imported only here, lazily.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.errors import DeepcError
from deepc.runtime.bundle import BundleContents, read_bundle
from deepc.runtime.library import Library
from deepc.runtime.model import Model


class CudaUnavailableError(DeepcError):
    """pycuda or a CUDA GPU is missing where a CUDA bundle is run."""

    exit_code = 3


def cuda_driver() -> Any:
    try:
        import pycuda.driver as cuda
    except ImportError as e:
        raise CudaUnavailableError(f"cannot run a CUDA bundle: pycuda is not importable ({e})"
                                   " — install pycuda (deepc's `cuda` extra) on a machine"
                                   " with an NVIDIA GPU and driver") from e
    try:
        cuda.init()
        if cuda.Device.count() == 0:
            raise CudaUnavailableError("cannot run a CUDA bundle: no CUDA GPU is visible")
    except cuda.Error as e:
        raise CudaUnavailableError(f"cannot run a CUDA bundle: the CUDA driver failed ({e})"
                                   " — check the GPU and its driver with nvidia-smi") from e
    return cuda


class _Graph:
    """A launch sequence captured from a stream into a CUDA graph (driver API via ctypes:
    pycuda has no graph support)."""

    def __init__(self, stream: Any, record: Any):
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.stream = ctypes.c_void_p(stream.handle)
        self._check(self.lib.cuStreamBeginCapture_v2(self.stream, 2), "begin capture")  # relaxed
        try:
            record()
        finally:
            graph = ctypes.c_void_p()
            status = self.lib.cuStreamEndCapture(self.stream, ctypes.byref(graph))
        self._check(status, "end capture")
        self.exec = ctypes.c_void_p()
        self._check(self.lib.cuGraphInstantiateWithFlags(ctypes.byref(self.exec), graph,
                                                         ctypes.c_ulonglong(0)), "instantiate")

    def launch(self) -> None:
        self._check(self.lib.cuGraphLaunch(self.exec, self.stream), "launch")

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"CUDA graph {what} failed (CUresult {status})")


class CudaLibrary(Library):
    """The device side of a CUDA bundle, with the interface Model expects of a library."""

    def __init__(self, bundle: BundleContents):
        cuda = self.cuda = cuda_driver()
        import pycuda.autoprimaryctx  # noqa: F401  (shares the primary context, as torch does)

        plan = bundle.manifest["device_plan"]
        self.module = cuda.module_from_buffer(bundle.library.read_bytes())
        self.arena = cuda.mem_alloc(max(int(plan["arena_bytes"]), 1))
        base = int(self.arena)
        cuda.memcpy_htod(base + int(plan["params_offset"]),
                         np.fromfile(bundle.params_path, dtype=np.uint8))
        self.inputs = [base + int(o) for o in plan["inputs"]]
        self.outputs = [base + int(o) for o in plan["outputs"]]
        self.stream = cuda.Stream()
        funcs: dict[str, Any] = {}
        self.launches = []
        for launch in plan["launches"]:
            fn = funcs.get(launch["func"])
            shared = int(launch.get("shared", 0))
            if fn is None:
                fn = funcs[launch["func"]] = self.module.get_function(launch["func"])
                fn.prepare("P" * len(launch["args"]))
                if shared:  # past 48 KiB a kernel must opt in to its dynamic shared memory
                    fn.set_attribute(cuda.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     shared)
            self.launches.append((fn, tuple(launch["grid"]), tuple(launch["block"]),
                                  tuple(base + int(a) for a in launch["args"]), shared))
        self.graph: _Graph | None = None
        if os.environ.get("DEEPC_CUDA_GRAPH", "1") != "0":
            try:
                self.graph = _Graph(self.stream, self._launch_all)
            except (OSError, RuntimeError, AttributeError):
                self.graph = None  # the plain launch loop below is as correct

    def _launch_all(self) -> None:
        for fn, grid, block, args, shared in self.launches:
            fn.prepared_async_call(grid, block, self.stream, *args, shared_size=shared)

    def execute(self) -> None:
        if self.graph is not None:
            self.graph.launch()
        else:
            self._launch_all()

    def time_launches(self, repeats: int = 20) -> list[float]:
        """Milliseconds of each launch on its own, in plan order: the median of `repeats`
        back-to-back calls timed by CUDA events, after one untimed call."""
        start, end = self.cuda.Event(), self.cuda.Event()
        out = []
        for fn, grid, block, args, shared in self.launches:
            fn.prepared_async_call(grid, block, self.stream, *args, shared_size=shared)
            times = []
            for _ in range(repeats):
                start.record(self.stream)
                fn.prepared_async_call(grid, block, self.stream, *args, shared_size=shared)
                end.record(self.stream)
                end.synchronize()
                times.append(start.time_till(end))
            out.append(float(np.median(times)))
        return out

    def trace_launches(self, runs: int, warmup: int = 2) -> list[list[tuple[float, float]]]:
        """(start, duration) in microseconds of every launch of `runs` runs of the plan, the
        starts counted from the first run's: an event recorded between each two launches
        (the launch loop, not the CUDA graph, so each launch can be told apart)."""
        for _ in range(warmup):
            self._launch_all()
        origin = self.cuda.Event()
        origin.record(self.stream)
        out = []
        for _ in range(runs):
            marks = [self.cuda.Event() for _ in range(len(self.launches) + 1)]
            for mark, (fn, grid, block, args, shared) in zip(marks, self.launches):
                mark.record(self.stream)
                fn.prepared_async_call(grid, block, self.stream, *args, shared_size=shared)
            marks[-1].record(self.stream)
            marks[-1].synchronize()
            out.append([(origin.time_till(a) * 1e3, a.time_till(b) * 1e3)
                        for a, b in itertools.pairwise(marks)])
        return out

    def run(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        for ptr, array in zip(self.inputs, feeds):
            self.cuda.memcpy_htod(ptr, array)
        self.execute()
        self.stream.synchronize()
        for ptr, array in zip(self.outputs, outs):
            self.cuda.memcpy_dtoh(array, ptr)

    def time_runs(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        """Seconds per run of the kernels alone, inputs already on the device (as frameworks
        are timed on GPUs); one run with the copies first checks it all works."""
        self.run(feeds, outs)
        for _ in range(warmup):
            self.execute()
        self.stream.synchronize()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.execute()
            self.stream.synchronize()
            times.append(time.perf_counter() - start)
        return times

    def set_num_threads(self, n: int) -> None:
        del n  # the GPU decides


class CudaModel(Model):
    """A loaded CUDA bundle: `run({name: array}) -> {name: array}` on the GPU."""

    def __init__(self, bundle: BundleContents | str | os.PathLike[str]):
        self.bundle = bundle if isinstance(bundle, BundleContents) else read_bundle(bundle)
        self.inputs, self.outputs = self.bundle.inputs, self.bundle.outputs
        self._library = CudaLibrary(self.bundle)  # type: ignore[assignment]

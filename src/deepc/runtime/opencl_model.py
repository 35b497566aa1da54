"""An OpenCL bundle to a runnable model: lib/kernels.cl built for the chosen device through
pyopencl, once per source and device (drivers that cache source builds — PoCL, whose cache
is put in the deepc cache dir, and NVIDIA — do it themselves; for others pyopencl keeps the
binaries in the deepc cache dir), then the device plan's launches over one arena buffer.

The device: $DEEPC_OPENCL_DEVICE (`deepc run/bench --device` sets it) — a type (cpu, gpu,
accelerator, all), `P:D` (platform and device index) or part of a device's name — else the
target file's `device.type`. pyopencl is an optional extra (`pip install deepc[opencl]`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.cache import cache_dir
from deepc.errors import DeepcError, ToolchainError
from deepc.runtime.bundle import BundleContents, read_bundle
from deepc.runtime.library import Library
from deepc.runtime.model import Model
from deepc.runtime.timing import time_calls

DEVICE_ENV = "DEEPC_OPENCL_DEVICE"
_TYPES = ("cpu", "gpu", "accelerator", "all")


class OpenCLUnavailableError(DeepcError):
    """pyopencl, an OpenCL platform or the wanted device is missing."""

    exit_code = 3


def _opencl() -> Any:
    # PoCL reads its cache directory when the platform loads: keep its kernels with deepc's
    os.environ.setdefault("POCL_CACHE_DIR", str(cache_dir("pocl")))
    try:
        import pyopencl as cl
    except ImportError as e:
        raise OpenCLUnavailableError(f"cannot run an OpenCL bundle: pyopencl is not importable"
                                     f" ({e}) — install deepc's `opencl` extra") from e
    return cl


def _platforms(cl: Any) -> list[Any]:
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    if not platforms:
        raise OpenCLUnavailableError("no OpenCL platform: install an OpenCL driver (Debian:"
                                     " pocl-opencl-icd for the CPU, or the GPU vendor's ICD)")
    return platforms


def pick_device(cl: Any, wanted: str) -> Any:
    """The first device matching `wanted` (a type, `P:D`, or part of a device name)."""
    found = [(p, d) for p in _platforms(cl) for d in p.get_devices()]

    def matches(p: Any, d: Any) -> bool:
        if wanted.lower() in _TYPES:
            kind = wanted.upper()
            return kind == "ALL" or bool(d.type & getattr(cl.device_type, kind))
        if re.fullmatch(r"\d+:\d+", wanted):
            return wanted == _index(found, p, d)
        return wanted.lower() in d.name.lower()

    for p, d in found:
        if matches(p, d):
            return d
    names = "; ".join(f"{_index(found, p, d)} {d.name.strip()} "
                      f"({_type_name(cl, d)})" for p, d in found)
    raise OpenCLUnavailableError(f"no OpenCL device matches {wanted!r}; found: {names or 'none'}"
                                 f" — choose one with --device (or ${DEVICE_ENV})")


def _type_name(cl: Any, device: Any) -> str:
    return next((t for t in _TYPES[:3] if device.type & getattr(cl.device_type, t.upper())),
                "other")


def _index(found: list[tuple[Any, Any]], p: Any, d: Any) -> str:
    platforms = list(dict.fromkeys(q for q, _ in found))
    return f"{platforms.index(p)}:{p.get_devices().index(d)}"


def _kernel_at(source: str, log: str) -> str:
    """The kernel holding the first error the build log points at (FILE:LINE:COL)."""
    m = re.search(r"error: \S*?:(\d+):\d+:|:(\d+):\d+: error", log)  # PoCL's, clang's
    if not m:
        return "?"
    lines = source.splitlines()[: int(m.group(1) or m.group(2))]
    for line in reversed(lines):
        k = re.match(r"__kernel\s+(?:__attribute__\(\(.*?\)\)\s+)?void\s+(\w+)", line)
        if k:
            return k.group(1)
    return "?"


def build_program(cl: Any, context: Any, device: Any, source: str) -> Any:
    try:
        return cl.Program(context, source).build(devices=[device],
                                                 cache_dir=str(cache_dir("opencl")))
    except cl.RuntimeError as e:
        log = str(e)
        first = next((ln.strip() for ln in log.splitlines() if "error" in ln),
                     log.strip().splitlines()[0] if log.strip() else "no build log")
        raise ToolchainError(f"OpenCL could not build kernel {_kernel_at(source, log)} for"
                             f" {device.name.strip()}: {first[:300]}") from None


class OpenCLLibrary(Library):
    """The device side of an OpenCL bundle, with the interface Model expects of a library."""

    def __init__(self, bundle: BundleContents):
        cl = self.cl = _opencl()
        wanted = (os.environ.get(DEVICE_ENV) or bundle.target.get("device", {}).get("type")
                  or "all")
        self.device = pick_device(cl, wanted.strip())
        self.context = cl.Context([self.device])
        self.queue = cl.CommandQueue(self.context)
        program = build_program(cl, self.context, self.device, bundle.library.read_text())
        plan = bundle.manifest["device_plan"]
        self.arena = cl.Buffer(self.context, cl.mem_flags.READ_WRITE,
                               max(int(plan["arena_bytes"]), 1))
        params = np.fromfile(bundle.params_path, dtype=np.uint8)
        if params.size:
            cl.enqueue_copy(self.queue, self.arena, params,
                            dst_offset=int(plan["params_offset"]))
        self.inputs = [int(o) for o in plan["inputs"]]
        self.outputs = [int(o) for o in plan["outputs"]]
        self.launches = []
        for launch in plan["launches"]:
            kernel = cl.Kernel(program, launch["func"])
            kernel.set_args(self.arena, *(np.uint64(a) for a in launch["args"]))
            block = tuple(int(b) for b in launch["block"])
            grid = tuple(int(g) * b for g, b in zip(launch["grid"], block))
            self.launches.append((kernel, grid, block))
        self.queue.finish()

    def execute(self) -> None:
        for kernel, grid, block in self.launches:
            self.cl.enqueue_nd_range_kernel(self.queue, kernel, grid, block)

    def run(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        for offset, array in zip(self.inputs, feeds):
            if array.nbytes:
                self.cl.enqueue_copy(self.queue, self.arena, array, dst_offset=offset)
        self.execute()
        for offset, array in zip(self.outputs, outs):
            if array.nbytes:
                self.cl.enqueue_copy(self.queue, array, self.arena, src_offset=offset)
        self.queue.finish()

    def time_runs(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        """Seconds per whole run, copies included (as `run` does it)."""
        return time_calls(lambda: self.run(feeds, outs), runs, warmup)

    def set_num_threads(self, n: int) -> None:
        del n  # the OpenCL driver decides


class OpenCLModel(Model):
    """A loaded OpenCL bundle: `run({name: array}) -> {name: array}` on an OpenCL device."""

    def __init__(self, bundle: BundleContents | str | os.PathLike[str]):
        self.bundle = bundle if isinstance(bundle, BundleContents) else read_bundle(bundle)
        self.inputs, self.outputs = self.bundle.inputs, self.bundle.outputs
        self._library = OpenCLLibrary(self.bundle)  # type: ignore[assignment]

    @property
    def device_name(self) -> str:
        return str(self._library.device.name).strip()  # type: ignore[attr-defined]

"""Runs GPU-scheduled kernels on the CPU: the renderer's C dialect with blockIdx/threadIdx as
globals, compiled by gcc, every (block, thread) pair called in turn. Stages that share memory
between threads (barriers) cannot run this way and are refused."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepc.backends.cstyle import Dialect
from deepc.backends.gpu.render import render_cuda
from deepc.ir.graph import Graph
from deepc.ir.types import np_dtype
from deepc.lowering.kernels import graph_kernels

SIM = Dialect(name="c-sim", prelude="#include <math.h>\n#include <stdbool.h>\n"
              "static long long deepc_bx, deepc_tx;",
              thread_index={"blockIdx.x": "deepc_bx", "threadIdx.x": "deepc_tx"},
              types={"float16": "_Float16"})


def simulate(graph: Graph, target: object, feeds: dict[str, np.ndarray],
             tmp: Path) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Each node its own kernel, scheduled for `target`, run on the CPU in graph order;
    the outputs, and the schedule records by kernel."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: the CPU simulation of GPU kernels compiles C with it")
    kernels = graph_kernels(graph)
    source, launches, scratch, records = render_cuda(kernels, target, SIM)
    assert "__syncthreads" not in source
    loops = drivers(kernels, (launches, scratch), "", lambda launch, args: (
        f"  for (deepc_bx = 0; deepc_bx < {launch.grid[0]}; ++deepc_bx)\n"
        f"    for (deepc_tx = 0; deepc_tx < {launch.block[0]}; ++deepc_tx)\n"
        f"      {launch.func}({args});\n"))
    src = tmp / "sim.c"
    src.write_text(source + loops)
    lib = tmp / "sim.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-w", "-o", str(lib), str(src), "-lm"],
                   check=True)
    outs = execute(ctypes.CDLL(str(lib)), graph, kernels, (launches, scratch), feeds, 0.0)
    return outs, records


def drivers(kernels: list, plan: tuple[dict, dict], head: str,
            body: Callable[[Any, str], str]) -> str:
    """C functions `run_<launch>(void* a0, ...)`, one per launch, each `body(launch, args)`
    (the kernel's parameters, then its scratch buffers)."""
    launches, scratch = plan
    out = []
    for k in kernels:
        n = len(k.args) + len(scratch[k.name])
        params = ", ".join(f"void* a{i}" for i in range(n))
        args = ", ".join(f"a{i}" for i in range(n))
        out += [f"{head}void run_{launch.func}({params}) {{\n{body(launch, args)}}}\n"
                for launch in launches[k.name]]
    return "".join(out)


def execute(so: ctypes.CDLL, graph: Graph, kernels: list, plan: tuple[dict, dict],
            feeds: dict[str, np.ndarray], fill: float) -> dict[str, np.ndarray]:
    """Each kernel's `run_<launch>` drivers in graph order, outputs first filled with `fill`
    (NaN poisons what a kernel fails to write), scratch buffers zeroed; the graph's outputs."""
    launches, scratch = plan
    values = {**{n: np.ascontiguousarray(v) for n, v in graph.constants.items()}, **feeds}
    for k in kernels:
        for o in k.outputs:
            t = graph.types[o]
            values[o] = np.full(t.shape, fill, np_dtype(t.dtype))
        temps = [np.zeros(b.shape, np_dtype(b.dtype)) for b in scratch[k.name]]
        ptrs = [values[a].ctypes.data_as(ctypes.c_void_p) for a in k.args]
        ptrs += [t.ctypes.data_as(ctypes.c_void_p) for t in temps]
        for launch in launches[k.name]:
            getattr(so, f"run_{launch.func}")(*ptrs)
    return {o: values[o] for o in graph.outputs}

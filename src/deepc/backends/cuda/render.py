"""GPU kernels to one C-style source file: each kernel's stages, launches and scratch."""

from __future__ import annotations

import os
from typing import Any

from deepc.backends.base import Launch
from deepc.backends.cstyle import Renderer, helpers, index_type_for
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.cuda.gemm import render_gemm
from deepc.backends.cuda.gemm_mma import MMA_HELPERS
from deepc.backends.cuda.ktable import KTables
from deepc.backends.cuda.warp import render_warp
from deepc.ir.loop import Buffer
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import Kernel
from deepc.schedule.gpu import Stage, gpu_stages
from deepc.schedule.schedule import Schedule


def tf32_allowed(target: Any, allow_tf32: bool | None = None) -> bool:
    """TF32 tensor cores: asked for (argument, else DEEPC_ALLOW_TF32=1) and declared by the
    target's matrix intrinsics."""
    if allow_tf32 is None:
        allow_tf32 = os.environ.get("DEEPC_ALLOW_TF32", "") not in ("", "0")
    matrix = tuple(getattr(target, "matrix_intrinsics", ()) or ())
    return bool(allow_tf32) and "mma.m16n8k8.tf32" in matrix


def kernel_stages(kernel: Kernel, target: Any, dialect: Any,
                  tf32: bool) -> tuple[list[Stage], tuple[Buffer, ...]]:
    """A kernel's launches (GPU stages) and its scratch buffers; only CUDA C gets the tiled
    matrix-product and warp-reduction kernels."""
    return gpu_stages(verify_func(kernel.func), target, dialect is CUDA, tf32)


def render_stages(kernels: list[Kernel], stages_of: dict[str, list[Stage]], dialect: Any,
                  tf32: bool) -> str:
    """One source file: the dialect's prelude and helpers, then each kernel's stages."""
    funcs = [s.func for st in stages_of.values() for s in st]
    r = Renderer(dialect, index_type_for(funcs))
    tables = KTables()
    parts = []
    for k in kernels:
        parts += [f"// {k.name}: {' '.join(k.ops)}"]
        parts += [render_gemm(r, s.func, *s.gemm, tables) if s.gemm is not None
                  else render_warp(r, s.func, s.warp) if s.warp is not None
                  else r.function(s.func) for s in stages_of[k.name]]
    head = [dialect.prelude, helpers(dialect), *([MMA_HELPERS] if tf32 else []),
            *tables.declarations()]
    return "\n".join([*head, *parts]) + "\n"


def render_cuda(kernels: list[Kernel], target: Any, dialect: Any = None,
                allow_tf32: bool | None = None) -> tuple[str, dict, dict, dict]:
    """C-style source for all kernels (CUDA C unless `dialect` says otherwise), with each
    kernel's launches, scratch buffers and per-stage schedules."""
    dialect = dialect or CUDA
    tf32 = dialect is CUDA and tf32_allowed(target, allow_tf32)
    launches: dict[str, list[Launch]] = {}
    scratch: dict[str, tuple[Buffer, ...]] = {}
    records: dict[str, list[Schedule]] = {}
    stages_of = {}
    for k in kernels:
        stages_of[k.name], scratch[k.name] = kernel_stages(k, target, dialect, tf32)
        launches[k.name] = [Launch(s.func.name, s.grid, s.block) for s in stages_of[k.name]]
        records[k.name] = [s.schedule for s in stages_of[k.name]]
    return render_stages(kernels, stages_of, dialect, tf32), launches, scratch, records

"""GPU kernels (CUDA, OpenCL, Metal) to one C-style source file: each kernel's stages, launches
and scratch."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from deepc.backends.base import Launch
from deepc.backends.cstyle import Dialect, Renderer, index_type_for
from deepc.backends.cstyle_module import helpers, intrinsic_helpers
from deepc.backends.cuda.dialect import CUDA
from deepc.ir.loop import Buffer
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import Kernel
from deepc.schedule.gpu import Stage, gpu_stages


def tf32_allowed(target: Any, allow_tf32: bool | None = None) -> bool:
    """TF32 tensor cores: asked for (argument, else DEEPC_ALLOW_TF32=1) and declared by the
    target's matrix intrinsics."""
    if allow_tf32 is None:
        allow_tf32 = os.environ.get("DEEPC_ALLOW_TF32", "") not in ("", "0")
    return bool(allow_tf32) and "mma.m16n8k8.tf32" in target.matrix_intrinsics


def _capabilities(dialect: Dialect) -> tuple[bool, bool]:
    """(tiles, shuffle): dialects with shared memory, barriers and vector loads get the tiled
    matrix products and warp reductions, combining lanes by shuffles where they spell them
    (else through shared memory)."""
    tiles = bool(dialect.barrier and dialect.shared_qualifier and dialect.vector_load)
    return tiles, "shfl_xor" in dialect.intrinsics


def uses_tf32(target: Any, dialect: Dialect, allow_tf32: bool | None) -> bool:
    """TF32 tiles: allowed, declared by the target, and spelt by the dialect."""
    return "mma_m16n8k8_tf32" in dialect.intrinsics and tf32_allowed(target, allow_tf32)


def async_copy(target: Any, dialect: Dialect) -> bool:
    """cp.async rings for the tiles: declared by the target and spelt by the dialect."""
    return "cp.async" in target.async_copy and "cp_async4" in dialect.intrinsics


def launch_of(stage: Stage) -> Launch:
    """A stage's launch, with the dynamic shared memory its kernel declares."""
    return Launch(stage.func.name, stage.grid, stage.block, stage.note,
                  int(stage.func.attrs.get("dynamic_shared", 0)))


def kernel_stages(kernel: Kernel, target: Any, dialect: Dialect, tf32: bool,
                  knobs: Mapping[str, Any] | None = None
                  ) -> tuple[list[Stage], tuple[Buffer, ...]]:
    """A kernel's launches (GPU stages) and its scratch buffers; `knobs` (a tuning record's)
    choose its matrix products' tiles."""
    tiles, shuffle = _capabilities(dialect)
    return gpu_stages(verify_func(kernel.func), target, tiles, tf32, tiles, shuffle, knobs,
                      async_copy(target, dialect))


def render_stages(kernels: list[Kernel], stages_of: dict[str, list[Stage]],
                  dialect: Dialect) -> str:
    """One source file: the dialect's prelude and helpers, then each kernel's stages."""
    funcs = [verify_func(s.func) for st in stages_of.values() for s in st]
    r = Renderer(dialect, index_type_for(funcs, wide=dialect.ctype("int64")))
    parts = []
    for k in kernels:
        parts += [f"// {k.name}: {' '.join(k.ops)}"]
        parts += [r.function(s.func) for s in stages_of[k.name]]
    head = [dialect.prelude, helpers(dialect), *intrinsic_helpers(funcs, dialect),
            *r.tables.declarations()]
    return "\n".join([p for p in head if p] + parts) + "\n"


def render_cuda(kernels: list[Kernel], target: Any, dialect: Dialect | None = None,
                allow_tf32: bool | None = None,
                knobs: Mapping[str, Mapping[str, Any]] | None = None
                ) -> tuple[str, dict, dict, dict]:
    """C-like source for all kernels (CUDA C unless `dialect` names another language with
    the same thread model), with each kernel's launches, scratch buffers and, per stage, its
    note, knobs and schedule steps; `knobs` (by kernel name) override default tiles."""
    dialect = dialect or CUDA
    tf32 = uses_tf32(target, dialect, allow_tf32)
    launches: dict[str, list[Launch]] = {}
    scratch: dict[str, tuple[Buffer, ...]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    stages_of = {}
    for k in kernels:
        stages_of[k.name], scratch[k.name] = kernel_stages(k, target, dialect, tf32,
                                                           (knobs or {}).get(k.name))
        launches[k.name] = [launch_of(s) for s in stages_of[k.name]]
        records[k.name] = [{"note": s.note, "knobs": s.knobs, "steps": s.schedule.to_list()}
                           for s in stages_of[k.name]]
    return render_stages(kernels, stages_of, dialect), launches, scratch, records

"""`deepc.compile` for CUDA targets: kernels -> GPU stages -> one CUDA C file -> a cubin."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepc.compiler.kernels import Kernel
from deepc.compiler.plan import Plan, make_plan
from deepc.ir.graph import Graph
from deepc.ir.loop import Buffer


@dataclass(frozen=True)
class Launch:
    """One kernel launch: `func` over the kernel's arguments, then its scratch buffers."""

    func: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"func": self.func, "grid": list(self.grid), "block": list(self.block)}


@dataclass
class CompiledCudaModel:
    graph: Graph
    target: Any
    kernels: list[Kernel]
    plan: Plan
    source: str
    cubin: bytes
    launches: dict[str, list[Launch]]  # kernel name -> its launches in order
    scratch: dict[str, tuple[Buffer, ...]]  # kernel name -> global intermediates
    compile_seconds: float
    schedules: dict[str, list[list[list[Any]]]] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        return {
            "kernels": len(self.kernels),
            "kernel_calls": len(self.plan.calls),
            "launches": sum(len(self.launches[k.name]) for k in self.plan.calls),
            "arena_bytes": self.plan.workspace_bytes,
            "params_bytes": self.plan.params_bytes,
            "compile_seconds": round(self.compile_seconds, 3),
        }

    def save(self, path: str | Path) -> Path:
        from deepc.compiler.package_cuda import write_cuda_bundle

        return write_cuda_bundle(self, Path(path))


def tf32_allowed(target: Any, allow_tf32: bool | None = None) -> bool:
    """TF32 tensor cores: asked for (argument, else DEEPC_ALLOW_TF32=1) and declared by the
    target's matrix intrinsics."""
    import os

    if allow_tf32 is None:
        allow_tf32 = os.environ.get("DEEPC_ALLOW_TF32", "") not in ("", "0")
    matrix = tuple(getattr(target, "matrix_intrinsics", ()) or ())
    return bool(allow_tf32) and "mma.m16n8k8.tf32" in matrix


def render_cuda(kernels: list[Kernel], target: Any, dialect: Any = None,
                allow_tf32: bool | None = None) -> tuple[str, dict, dict, dict]:
    """C-like source (CUDA C unless `dialect` names another language with the same thread
    model) for all kernels, with each kernel's launches, scratch buffers and schedules.
    Dialects with shared memory and barriers get the tiled matrix products and warp
    reductions (by shuffles where they spell them), those that spell the mma intrinsic TF32
    tiles."""
    from deepc.backends.cstyle import Renderer, index_type_for
    from deepc.backends.cstyle_module import helpers, intrinsic_helpers
    from deepc.backends.cuda.dialect import CUDA
    from deepc.ir.loop_verify import verify_func
    from deepc.schedule.gpu import gpu_stages

    dialect = dialect or CUDA
    tiles = bool(dialect.barrier and dialect.shared_qualifier and dialect.vector_load)
    shuffle = "shfl_xor" in dialect.intrinsics  # else warps combine in shared memory
    tf32 = "mma_m16n8k8_tf32" in dialect.intrinsics and tf32_allowed(target, allow_tf32)
    launches: dict[str, list[Launch]] = {}
    scratch: dict[str, tuple[Buffer, ...]] = {}
    records: dict[str, list[list[Any]]] = {}
    stages_of = {}
    for k in kernels:
        stages, scratch[k.name] = gpu_stages(verify_func(k.func), target, tiles, tf32, tiles,
                                             shuffle)
        stages_of[k.name] = stages
        launches[k.name] = [Launch(s.func.name, s.grid, s.block) for s in stages]
        # one list of steps per stage (a stage is one launch)
        records[k.name] = [s.schedule.to_list() + ([[s.note]] if s.note else [])
                           for s in stages]
    funcs = [verify_func(s.func) for st in stages_of.values() for s in st]
    r = Renderer(dialect, index_type_for(funcs, wide=dialect.ctype("int64")))
    parts = []
    for k in kernels:
        parts += [f"// {k.name}: {' '.join(k.ops)}"]
        parts += [r.function(s.func) for s in stages_of[k.name]]
    head = [dialect.prelude, helpers(dialect), *intrinsic_helpers(funcs, dialect),
            *r.tables.declarations()]
    return "\n".join([p for p in head if p] + parts) + "\n", launches, scratch, records


def compile_cuda(graph: Graph, kernels: list[Kernel], target: Any, start: float,
                 report: Any, allow_tf32: bool | None = None) -> CompiledCudaModel:
    from deepc.backends.cuda.build import build_cubin

    report("schedule", 0, 1)
    plan = make_plan(graph, kernels)
    source, launches, scratch, records = render_cuda(kernels, target, allow_tf32=allow_tf32)
    report("nvcc", 0, 1)
    cubin = build_cubin(source, target)
    return CompiledCudaModel(graph, target, kernels, plan, source, cubin, launches, scratch,
                             time.perf_counter() - start, records)

"""`CompiledModel`: what `deepc.compile` returns for any target — the graph as compiled, its
kernels and memory plan, the backend's module and each kernel's schedule record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepc.backends import BACKENDS, Backend, CompileOptions, Module
from deepc.compiler.packagers import packager_for
from deepc.compiler.packagers.common import params_of
from deepc.ir.graph import Graph
from deepc.lowering.kernels import Kernel
from deepc.lowering.plan import Plan
from deepc.schedule.record import ScheduleRecord


@dataclass
class CompiledModel:
    graph: Graph
    target: Any  # deepc.target.Target
    kernels: list[Kernel]  # as the plan calls them
    plan: Plan
    module: Module
    records: list[ScheduleRecord]  # one per kernel, in kernel order
    options: CompileOptions
    compile_seconds: float

    @property
    def backend(self) -> Backend:
        return BACKENDS.get(self.target.backend)

    @property
    def source(self) -> str:
        """The backend's source text: LLVM IR or C-like kernels."""
        return self.module.source

    def settings(self) -> dict[str, Any]:
        """The options as they took effect (recorded in the bundle manifest)."""
        return {"opt_level": self.options.opt_level, **self.module.settings}

    def stats(self) -> dict[str, Any]:
        stats = {
            "kernels": len(self.kernels),
            # zero-copy reshapes and concats written in place by their parts are not called
            "kernel_calls": len(self.plan.calls),
            "concats_in_place": len({c for c, _ in self.plan.views.values()}),
            "arena_bytes": self.plan.workspace_bytes,
            "arena_lower_bound_bytes": self.plan.lower_bound_bytes,
            "naive_bytes": self.plan.naive_bytes,
            "inplace_values": len(self.plan.inplace),
            "params_bytes": self.plan.params_bytes,
            "compile_seconds": round(self.compile_seconds, 3),
        }
        if self.module.launches:
            stats["launches"] = sum(len(self.module.launches[k.name]) for k in self.plan.calls)
        return stats

    def params(self) -> bytes:
        return bytes(params_of(self).data)

    def save(self, path: str | Path) -> Path:
        """Write the bundle with the packager of the target's device kind."""
        return packager_for(self.target)(self, Path(path))

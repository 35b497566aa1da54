"""The GPU backends' common shape: GPU stages (schedule/gpu.py) rendered in a dialect of the
C-style renderer; each backend says only its dialect and how its source becomes a binary."""

from __future__ import annotations

from typing import Any

from deepc.backends.base import Backend, CompileOptions, KernelSchedule, Module, Report
from deepc.backends.cstyle import Dialect
from deepc.backends.cstyle_text import cstyle_text
from deepc.backends.gpu.render import kernel_stages, launch_of, render_stages, uses_tf32
from deepc.lowering.kernels import Kernel
from deepc.lowering.plan import Plan
from deepc.schedule.record import Workload
from deepc.schedule.schedule import Schedule


class GpuBackend(Backend):
    """A backend whose kernels are GPU stages in `dialect`; `binary` builds the source."""

    dialect: Dialect
    build_step = ""  # the progress label of `binary`

    def binary(self, source: str, target: Any) -> bytes:
        """The device binary of `source`; empty where the runtime builds it at load."""
        del source, target
        return b""

    def schedule(self, kernels: list[Kernel], target: Any,
                 options: CompileOptions) -> list[KernelSchedule]:
        tf32 = uses_tf32(target, self.dialect, options.allow_tf32)
        fingerprint = target.fingerprint() if options.tuned else ""
        out = []
        for k in kernels:
            knobs = (options.tuned.get(Workload.of(k.func, k.ops, fingerprint).key)
                     if options.tuned else None)
            # the plan sees the kernel as lowered: its stages are launched in its place
            stages, scratch = kernel_stages(k, target, self.dialect, tf32, knobs)
            launches = tuple(Schedule(s.schedule.steps, {**s.knobs, "mapping": s.note})
                             for s in stages)
            out.append(KernelSchedule(k, launches, (stages, scratch), tuned=knobs is not None))
        return out

    def build(self, name: str, scheduled: list[KernelSchedule], plan: Plan, target: Any,
              options: CompileOptions, report: Report) -> Module:
        tf32 = uses_tf32(target, self.dialect, options.allow_tf32)
        kernels = [s.kernel for s in scheduled]
        stages_of = {s.kernel.name: s.state[0] for s in scheduled}
        report("render", 0, 1)
        source = render_stages(kernels, stages_of, self.dialect)
        if self.build_step:
            report(self.build_step, 0, 1)
        launches = {k: [launch_of(s) for s in st]
                    for k, st in stages_of.items()}
        scratch = {s.kernel.name: s.state[1] for s in scheduled}
        return Module(self.name, self.binary(source, target), source, launches, scratch,
                      {"allow_tf32": tf32})

    def source_of(self, module: Module, kernel: Kernel) -> str:
        return cstyle_text(module.source, kernel.name)

"""The LLVM backend registered: CPU default schedules, LLVM IR for every kernel and the
model's entry point, optimised and emitted as object code for the target's triple."""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from deepc.backends.base import (
    BACKENDS,
    Backend,
    CompileOptions,
    KernelSchedule,
    Module,
    Report,
)
from deepc.backends.llvm.codegen import emit_kernel
from deepc.backends.llvm.convert import rounds_in_convert
from deepc.backends.llvm.entry import emit_entry
from deepc.backends.llvm.machine import MachineSpec, emit_assembly, emit_object, optimize
from deepc.backends.llvm.text import asm_function, function_text
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import Kernel
from deepc.lowering.plan import Plan
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.record import Workload


def machine_spec(target: Any) -> MachineSpec:
    return MachineSpec(target.triple, target.cpu or "", target.llvm_features)


class LlvmBackend(Backend):
    name = "llvm"

    def schedule(self, kernels: list[Kernel], target: Any,
                 options: CompileOptions) -> list[KernelSchedule]:
        machine = CpuMachine.of(target)
        fingerprint = target.fingerprint() if options.tuned else ""
        out = []
        for k in kernels:
            knobs = (options.tuned.get(Workload.of(k.func, k.ops, fingerprint).key)
                     if options.tuned else None)
            sch = default_schedule(verify_func(k.func), machine, knobs)
            func = verify_func(sch.apply(k.func))
            out.append(KernelSchedule(Kernel(k.name, func, k.inputs, k.outputs, k.nodes, k.ops),
                                      (sch,), tuned=knobs is not None))
        return out

    def build(self, name: str, scheduled: list[KernelSchedule], plan: Plan, target: Any,
              options: CompileOptions, report: Report) -> Module:
        module = ir.Module(name=name)
        byte_permutes = target.has_feature("avx512vbmi")
        spec = machine_spec(target)
        rounding = rounds_in_convert(spec.triple)
        for k, s in enumerate(scheduled):
            report("codegen", k, len(scheduled))
            emit_kernel(module, s.kernel.func, byte_permutes=byte_permutes,
                        rounds_in_convert=rounding)
        emit_entry(module, plan)
        report("llvm", 0, 1)
        mod = optimize(module, spec)
        return Module(self.name, emit_object(mod, spec), str(mod))

    def source_of(self, module: Module, kernel: Kernel) -> str:
        return function_text(module.source, kernel.func.name)

    def assembly_of(self, module: Module, kernel: Kernel, target: Any) -> str:
        import llvmlite.binding as llvm

        asm = emit_assembly(llvm.parse_assembly(module.source), machine_spec(target))
        return asm_function(asm, kernel.func.name)


BACKENDS.add("llvm", LlvmBackend())

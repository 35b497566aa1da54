"""LLVM target machines, optimisation, and turning modules into objects, assembly or a JIT."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import llvmlite.binding as llvm
from llvmlite import ir


@cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class MachineSpec:
    triple: str
    cpu: str = ""
    features: str = ""
    reloc: str = "pic"

    @staticmethod
    def host() -> MachineSpec:
        _init()
        return MachineSpec(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                           llvm.get_host_cpu_features().flatten())


@cache
def target_machine(spec: MachineSpec) -> llvm.TargetMachine:
    return new_target_machine(spec)


def new_target_machine(spec: MachineSpec, codemodel: str = "default") -> llvm.TargetMachine:
    """A target machine of its own (an execution engine takes ownership of the one it gets)."""
    _init()
    target = llvm.Target.from_triple(spec.triple)
    return target.create_target_machine(cpu=spec.cpu, features=spec.features, opt=3,
                                        reloc=spec.reloc, codemodel=codemodel)


def optimize(module: ir.Module | str, spec: MachineSpec) -> llvm.ModuleRef:
    """Parse, verify and run LLVM's O3 pipeline for the target machine."""
    _init()
    tm = target_machine(spec)
    mod = llvm.parse_assembly(str(module))
    mod.triple = spec.triple
    mod.data_layout = str(tm.target_data)
    mod.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)
    return mod


def emit_object(mod: llvm.ModuleRef, spec: MachineSpec) -> bytes:
    return target_machine(spec).emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef, spec: MachineSpec) -> str:
    return target_machine(spec).emit_assembly(mod)


class JitModule:
    """Host JIT (MCJIT) of an optimised module; `address(name)` gives a callable's address."""

    def __init__(self, mod: llvm.ModuleRef):
        if any(f.name == "deepc_parallel_for" for f in mod.functions):
            from deepc.backends.link import load_runtime_for_jit

            load_runtime_for_jit()
        spec = MachineSpec.host()
        # the JIT code model: MCJIT may place a module's code and its constants more than 2 GiB
        # apart in a long-lived process with a large heap, which overflows the small model's
        # 32-bit PC-relative relocations and aborts the whole process inside finalize_object
        self.engine = llvm.create_mcjit_compiler(mod, new_target_machine(spec, "jitdefault"))
        self.engine.finalize_object()
        self.engine.run_static_constructors()
        self._mod = mod

    def address(self, name: str) -> int:
        return self.engine.get_function_address(name)

    def kernel(self, name: str, nargs: int) -> Callable[..., None]:
        """A callable for a kernel taking `nargs` pointers; it keeps this module (and so the
        machine code) alive for as long as it is referenced."""
        proto = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nargs))
        fn = proto(self.address(name))

        def call(*pointers: int) -> None:
            fn(*pointers)

        call.module = self  # type: ignore[attr-defined]
        return call

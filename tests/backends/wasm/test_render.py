"""The wasm path rendered without toolchains: the runtime module, the link line, the loader."""

from __future__ import annotations

from pathlib import Path

import llvmlite.binding as llvm

from deepc.backends import BACKENDS
from deepc.backends.llvm.backend import LlvmBackend
from deepc.backends.wasm.link import link_argv
from deepc.backends.wasm.runtime import runtime_module
from deepc.runtime.wasm_assets import loader_spec, render_loader
from deepc.schedule.cpu_machine import CpuMachine
from deepc.target import load_target


def test_the_wasm_backend_is_the_llvm_backend_on_one_core() -> None:
    backend = BACKENDS.get("wasm")
    target = load_target("wasm32-simd")
    assert isinstance(backend, LlvmBackend)
    machine = CpuMachine.of(target)
    assert (machine.vector_bits, machine.cores) == (128, 1)  # no parallel loops scheduled


def test_runtime_gives_what_the_kernels_call_without_libc() -> None:
    mod = llvm.parse_assembly(str(runtime_module("wasm32-unknown-unknown")))
    defined = {f.name for f in mod.functions if not f.is_declaration}
    assert {"malloc", "free", "deepc_alloc", "deepc_parallel_for"} <= defined
    # nothing left for a libc: only wasm intrinsics are declared
    assert all(f.name.startswith("llvm.") for f in mod.functions if f.is_declaration)


def test_link_line_exports_the_entry_and_allocator() -> None:
    argv = link_argv("wasm-ld", [Path("m.o"), Path("r.o")], Path("m.wasm"))
    assert argv[:2] == ["wasm-ld", "--no-entry"]
    assert {"--export=deepc_run", "--export=deepc_alloc", "--stack-first"} <= set(argv)


def test_loader_declares_the_models_spec() -> None:
    spec = loader_spec("m", [{"name": "x", "shape": [1, 3], "dtype": "float32"}],
                       [{"name": "y", "shape": [1], "dtype": "float32"}], 64, 128, {})
    text = render_loader(spec)
    assert text.startswith('const SPEC = {"name": "m"')
    assert "export async function load(wasmBytes, paramsBytes)" in text

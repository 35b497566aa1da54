"""A wasm model's object code and the wasm runtime, linked by wasm-ld into model.wasm.

    wasm-ld --no-entry --export=deepc_run --export=deepc_alloc --stack-first
            -z stack-size=... -o model.wasm model.o runtime.o

The stack comes first, so overflowing it traps instead of writing over the data; it is
large because kernels keep scratch buffers up to 64 KiB on it (codegen.STACK_ALLOC_LIMIT).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from deepc.backends.link import run_tool
from deepc.backends.llvm.backend import machine_spec
from deepc.backends.llvm.entry import ENTRY
from deepc.backends.llvm.machine import MachineSpec, emit_object, optimize
from deepc.backends.wasm.runtime import EXPORTS, runtime_module
from deepc.cache import atomic_output
from deepc.errors import ToolchainError

STACK_BYTES = 8 << 20


def linker(target: Any) -> str:
    """The target's `toolchain.linker` (wasm-ld), checked to be installed."""
    toolchain = target.toolchain
    if not toolchain.linker:
        raise ToolchainError(f"target {target.name!r} names no linker — add"
                             ' linker = "wasm-ld" under [toolchain] in its target file')
    path = shutil.which(toolchain.linker)
    if path is None:
        package = toolchain.linker_package or "lld"
        raise ToolchainError(f"linker {toolchain.linker!r} (toolchain.linker of target"
                             f" {target.name!r}) is not installed — install it with"
                             f" `apt-get install {package}`")
    return path


@functools.cache
def runtime_object(spec: MachineSpec) -> bytes:
    mod = runtime_module(spec.triple)
    return emit_object(optimize(mod, spec), spec)


def link_argv(ld: str, objects: list[Path], out: Path) -> list[str]:
    exports = [f"--export={name}" for name in (ENTRY, *EXPORTS)]
    return [ld, "--no-entry", *exports, "--stack-first", "-z", f"stack-size={STACK_BYTES}",
            "-o", str(out), *map(str, objects)]


def link_wasm(object_code: bytes, target: Any, out: Path) -> Path:
    """model.wasm at `out` from the model's object code and the wasm runtime."""
    ld = linker(target)
    spec = machine_spec(target)
    with tempfile.TemporaryDirectory(prefix="deepc-wasm-") as tmp:
        objects = [Path(tmp) / "model.o", Path(tmp) / "runtime.o"]
        objects[0].write_bytes(object_code)
        objects[1].write_bytes(runtime_object(spec))
        with atomic_output(Path(out)) as dest:
            run_tool(link_argv(ld, objects, dest), f"link {Path(out).name}", target)
    return Path(out)

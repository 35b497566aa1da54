"""Object files to shared libraries with the target's C toolchain, and the C runtime they call.

`compile_runtime` builds runtime/c/deepc_runtime.c for a target (cached on disk);
`link_shared` links objects into a shared library; `link_model` does both for a model's
object code; `load_runtime_for_jit` makes the runtime callable from MCJIT-compiled kernels.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepc.backends.compilers import choose
from deepc.backends.libc_floor import check_libc_floor
from deepc.cache import atomic_output, cache_dir
from deepc.errors import ToolchainError

RUNTIME_DIR = Path(__file__).resolve().parents[1] / "runtime" / "c"
RUNTIME_SOURCE = RUNTIME_DIR / "deepc_runtime.c"
RUNTIME_HEADER = RUNTIME_DIR / "deepc_runtime.h"
BASE_CFLAGS = ("-std=c11", "-O3", "-fPIC")
# -Bsymbolic: the model's kernels call the runtime linked into the same library, even when
# another copy (the JIT's, loaded RTLD_GLOBAL) is already in the process
LINK_FLAGS = ("-shared", "-Wl,-Bsymbolic", "-Wl,-z,noexecstack")
LINK_LIBS = ("-lm", "-lpthread")
X86_ARCHES = ("x86_64", "i386", "i486", "i586", "i686")
ARM_ARCHES = ("aarch64", "arm64", "arm", "thumb")


def _name(target: Any) -> str:
    return str(getattr(target, "name", target))


def compiler(target: Any) -> list[str]:
    """The command line of the target's first installed C compiler (compilers.py chooses)."""
    return list(choose(target).argv)


def arch_flags(target: Any) -> list[str]:
    """-march/-mcpu from the target's ISA unless its cflags choose one, then its cflags."""
    cflags = list(getattr(getattr(target, "toolchain", None), "cflags", ()) or ())
    if any(f.startswith(("-march=", "-mcpu=")) for f in cflags):
        return cflags
    isa = getattr(target, "isa", None)
    triple = getattr(isa, "triple", None) or ""
    # a detected host CPU may carry a name newer than the C compiler knows; "native" is the same
    cpu = "native" if getattr(isa, "detect", False) else getattr(isa, "cpu", None)
    if not cpu or cpu == "generic":
        return cflags
    arch = triple.split("-", 1)[0]
    if arch.startswith(X86_ARCHES):
        return [f"-march={cpu}", *cflags]
    if arch.startswith(ARM_ARCHES):
        return [f"-mcpu={cpu}", *cflags]
    return cflags


def run_tool(argv: Sequence[str], what: str, target: Any) -> None:
    """Run a toolchain command (compiler, linker) for `target`; a failure is a ToolchainError
    naming the tool, the step (`what`) and the tail of its output."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except OSError as e:
        raise ToolchainError(f"cannot run {argv[0]!r} to {what} for target {_name(target)!r}:"
                             f" {e.strerror} — check toolchain.cc in the target file") from e
    if done.returncode != 0:
        log = (done.stderr or done.stdout).strip().splitlines()[-20:]
        raise ToolchainError(f"{argv[0]} failed to {what} for target {_name(target)!r}"
                             f" (exit {done.returncode}): {' | '.join(log)}"
                             " — check toolchain.cc and toolchain.cflags in the target file")


def compile_runtime(target: Any, static: bool = False) -> Path:
    """The runtime compiled for `target` as an object file, cached by source, compiler, flags;
    `static`: for a program linked whole with the compiler's static C library (musl for zig)."""
    cc = choose(target)
    argv = list(cc.static_argv if static else cc.argv)
    flags = [*BASE_CFLAGS, *cc.flags(arch_flags(target)), f"-I{RUNTIME_DIR}"]
    key = hashlib.sha256()
    for part in (RUNTIME_SOURCE.read_bytes(), RUNTIME_HEADER.read_bytes(),
                 "\0".join([*argv, *flags]).encode(), cc.identity.encode()):
        key.update(hashlib.sha256(part).digest())
    triple = getattr(getattr(target, "isa", None), "triple", None) or "unknown"
    out = cache_dir("runtime") / f"deepc_runtime-{triple}-{key.hexdigest()[:20]}.o"
    if not out.exists():
        with atomic_output(out) as tmp:
            run_tool([*argv, *flags, "-c", str(RUNTIME_SOURCE), "-o", str(tmp)],
                     "compile the deepc runtime", target)
    return out


def link_shared(objects: Sequence[Path], target: Any, out: Path) -> Path:
    """Link object files into the shared library `out` with the target's C compiler; one that
    needs a glibc newer than the target's libc floor is refused (libc_floor.py)."""
    cc = choose(target)
    ldflags = list(getattr(getattr(target, "toolchain", None), "ldflags", ()) or ())
    out = Path(out)
    with atomic_output(out) as tmp:
        run_tool([*cc.argv, *cc.flags(arch_flags(target)), *LINK_FLAGS, "-o", str(tmp),
                  *map(str, objects), *ldflags, *LINK_LIBS], f"link {out.name}", target)
        check_libc_floor(tmp, target, out.name)
        tmp.chmod(0o755)
    return out


def link_model(object_code: bytes, target: Any, out: Path) -> Path:
    """A model's object code (from the LLVM backend) plus the runtime, as the library `out`."""
    runtime = compile_runtime(target)
    with tempfile.TemporaryDirectory(prefix="deepc-link-") as tmp:
        obj = Path(tmp) / "model.o"
        obj.write_bytes(object_code)
        return link_shared([obj, runtime], target, out)


def runtime_library(target: Any) -> Path:
    """The runtime alone as a shared library for `target` (cached next to its object)."""
    obj = compile_runtime(target)
    lib = obj.with_suffix(".so")
    if not lib.exists():
        link_shared([obj], target, lib)
    return lib


@functools.cache
def load_runtime_for_jit() -> ctypes.CDLL:
    """Load the host runtime into the process so MCJIT-compiled kernels resolve its symbols.

    Returns the library, through which `deepc_set_num_threads` reaches the same pool.
    """
    import llvmlite.binding as llvm

    from deepc.target import load_target

    lib = runtime_library(load_target("host"))
    llvm.load_library_permanently(str(lib))
    return ctypes.CDLL(str(lib))

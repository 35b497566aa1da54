"""A target's C compilers, in its preference order, to the command line of the first installed.

A target file lists them under `toolchain.compilers`: "zig" is `zig cc` from the ziglang
package (`pip install 'deepc[cross]'`), which links against any glibc version, so the bundle
loads on the target's libc floor (`toolchain.libc`), and which links fully static programs with
musl; "cc" is the command in `toolchain.cc` (a Debian gcc cross compiler, say), which links
against the glibc installed beside it. DEEPC_CC=zig or DEEPC_CC=cc narrows the choice to that
one on the targets that list it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepc.errors import ToolchainError
from deepc.target.sections import COMPILERS

ENV = "DEEPC_CC"
CROSS_EXTRA = "pip install 'deepc[cross]'"
_CPU_FLAGS = ("-mcpu=", "-march=")


def _name(target: Any) -> str:
    return str(getattr(target, "name", target))


@dataclass(frozen=True)
class CCompiler:
    """One C compiler for a target: `argv` links against the libc floor (dynamic, as the
    bundle's model.so), `static_argv` links a program that needs no C library on the device."""

    kind: str  # "zig" or "cc"
    argv: tuple[str, ...]
    static_argv: tuple[str, ...]
    identity: str  # changes when the compiler is upgraded (cache keys)
    honours_floor: bool  # links against the target's libc floor whatever is installed here

    def flags(self, flags: list[str]) -> list[str]:
        """The target's flags for this compiler: zig takes the CPU in its own spelling, and
        that is already in argv."""
        if self.kind == "zig":
            return [f for f in flags if not f.startswith(_CPU_FLAGS)]
        return flags

    def make_words(self, static: bool = False) -> str:
        """argv (or static_argv) as a Makefile's CC: `python3 -m ziglang` rather than this
        interpreter's path where python3 on PATH is the same interpreter."""
        argv = list(self.static_argv if static else self.argv)
        python3 = shutil.which("python3")
        if argv[0] == sys.executable and python3 and Path(python3).resolve() == Path(
                sys.executable).resolve():
            argv[0] = "python3"
        return shlex.join(argv)


def zig_command() -> list[str] | None:
    """`zig` as argv: the ziglang package's, else a zig on PATH; None where neither is."""
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang"]
    return ["zig"] if shutil.which("zig") else None


@functools.cache
def _zig_identity(argv0: str) -> str:
    if argv0 == sys.executable:
        return f"ziglang {importlib.metadata.version('ziglang')}"
    return tool_identity(argv0)


def tool_identity(path: str) -> str:
    """Changes when the compiler is upgraded, so cached objects are rebuilt with the new one."""
    resolved = Path(shutil.which(path) or path).resolve()
    stat = resolved.stat()
    return f"{resolved}:{stat.st_size}:{stat.st_mtime_ns}"


def musl_target(zig_target: str) -> str:
    """zig's musl twin of a glibc platform: arm-linux-gnueabihf -> arm-linux-musleabihf."""
    arch, os_name, abi = zig_target.split("-", 2)
    return f"{arch}-{os_name}-{abi.replace('gnu', 'musl', 1)}"


def zig_cpu(target: Any) -> list[str]:
    """-mcpu in zig's spelling (cortex_a53) from the target's cflags or isa.cpu."""
    cflags = getattr(target.toolchain, "cflags", ()) or ()
    cpu = next((f.split("=", 1)[1] for f in cflags if f.startswith(_CPU_FLAGS)),
               getattr(target.isa, "cpu", None))
    return [f"-mcpu={cpu.replace('-', '_')}"] if cpu and cpu != "generic" else []


def _zig(target: Any) -> CCompiler | None:
    zig = zig_command()
    if zig is None:
        return None
    toolchain = target.toolchain
    major, minor = toolchain.glibc_floor()
    cpu = zig_cpu(target)
    return CCompiler(
        "zig", (*zig, "cc", "-target", f"{toolchain.zig_target}.{major}.{minor}", *cpu),
        (*zig, "cc", "-target", musl_target(toolchain.zig_target), *cpu, "-static"),
        _zig_identity(zig[0]), honours_floor=True)


def _cc(target: Any) -> CCompiler | None:
    argv = tuple(shlex.split(target.toolchain.cc or ""))
    if not argv or shutil.which(argv[0]) is None:
        return None
    return CCompiler("cc", argv, (*argv, "-static"), tool_identity(argv[0]),
                     honours_floor=False)


FINDERS = {"zig": _zig, "cc": _cc}


def preference(target: Any) -> tuple[str, ...]:
    """The compilers the target lists (just "cc" where it lists none), narrowed by DEEPC_CC
    to the one it names where the target lists that one (a host target keeps its cc)."""
    listed = tuple(getattr(target.toolchain, "compilers", ()) or ()) or ("cc",)
    wanted = os.environ.get(ENV)
    if not wanted:
        return listed
    if wanted not in COMPILERS:
        raise ToolchainError(f"{ENV}={wanted} names no compiler deepc knows — unset it or set"
                             f" it to one of {', '.join(COMPILERS)}")
    return (wanted,) if wanted in listed else listed


def _how_to_get(target: Any, kinds: tuple[str, ...]) -> str:
    toolchain = target.toolchain
    ways = []
    for kind in kinds:
        if kind == "zig":
            ways.append(f"`{CROSS_EXTRA}` (zig cc)")
        elif toolchain.cc_package:
            ways.append(f"`apt-get install {toolchain.cc_package}` ({toolchain.cc})")
        else:
            ways.append(f"install {toolchain.cc} or point toolchain.cc of the target file at one")
    return " or ".join(ways)


def choose(target: Any) -> CCompiler:
    """The first installed of the target's compilers, or an error naming how to get each."""
    toolchain = getattr(target, "toolchain", None)
    if toolchain is None or not (toolchain.cc or toolchain.compilers):
        raise ToolchainError(f"target {_name(target)!r} declares no C compiler — add"
                             ' cc = "..." under [toolchain] in its target file')
    kinds = preference(target)
    for kind in kinds:
        found = FINDERS[kind](target)
        if found is not None:
            return found
    names = " or ".join("zig" if k == "zig" else repr(toolchain.cc) for k in kinds)
    raise ToolchainError(f"no C compiler for target {_name(target)!r}: {names} is not installed"
                         f" — install one with {_how_to_get(target, kinds)}")

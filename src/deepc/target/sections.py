"""The sections of a target file as frozen dataclasses, and the rules tying them to kinds."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field, fields

KINDS = ("cpu", "cuda", "opencl", "metal", "wasm", "fpga")
# devices whose kernels run as the LLVM backend's SIMD loops: layouts made for vector
# registers (passes/layout*.py) apply to them
VECTOR_KINDS = ("cpu", "wasm")
BACKENDS = ("llvm", "cuda", "opencl", "metal", "wasm", "hls", "c")
HLS_FLAVOURS = ("vitis", "vivado", "intel")
COMPILERS = ("zig", "cc")
LIBC = re.compile(r"glibc-(\d+)\.(\d+)")


def _choice(values: tuple[str, ...], **default: None) -> typing.Any:
    return field(metadata={"choices": values}, **default)


@dataclass(frozen=True)
class Device:
    """What executes the code and which backend writes it."""

    kind: str = _choice(KINDS)
    backend: str = _choice(BACKENDS)
    vendor: str | None = None
    type: str | None = None  # which OpenCL device runs the bundle: cpu | gpu | accelerator


@dataclass(frozen=True)
class Isa:
    """The instruction set LLVM compiles for (CPU and wasm targets; the host CPU of others)."""

    triple: str | None = None
    cpu: str | None = None
    features: tuple[str, ...] = ()
    vector_bits: int | None = None
    # vector registers a register tile's accumulators may take; the rest hold operands (x86
    # FMAs read a broadcast operand from memory, ARM's need it in a register)
    accumulator_registers: int | None = None
    cores: int | None = None
    # true: the loader fills triple, cpu, features, vector_bits, accumulator_registers, cores
    # (and the caches) from
    # the machine deepc runs on; a resolved target keeps the flag to say where they came from
    detect: bool = False


@dataclass(frozen=True)
class Memory:
    """The memory hierarchy: per-core caches, shared last levels, DRAM size and bandwidth."""

    l1d_kib: int | None = None
    l2_kib: int | None = None
    l3_kib: int | None = None
    cache_line: int | None = None
    dram_mib: int | None = None
    bandwidth_gbps: float | None = None


@dataclass(frozen=True)
class Intrinsics:
    """Instructions a schedule may tensorize onto: fused multiply-add, dot products, matrices."""

    fma: bool = False
    dot: tuple[str, ...] = ()
    matrix: tuple[str, ...] = ()
    # asynchronous global-to-shared copies a pipelined schedule may issue ("cp.async")
    async_copy: tuple[str, ...] = ()


@dataclass(frozen=True)
class Toolchain:
    """External tools a build or a run needs; *_package names the Debian package providing it."""

    # C compilers in preference order, the first one installed builds: "zig" (`zig cc` from
    # the ziglang package, for zig_target at the libc floor) and "cc" (the command below)
    compilers: tuple[str, ...] = ()
    zig_target: str | None = None  # zig's name for the platform, without the glibc version
    # the oldest C library the bundles must load on, "glibc-2.28": no shipped ELF file needs
    # a symbol version newer than it
    libc: str | None = None
    cc: str | None = None
    cflags: tuple[str, ...] = ()
    linker: str | None = None
    ldflags: tuple[str, ...] = ()
    emulator: str | None = None
    runner: str | None = None
    hls: str | None = None
    cc_package: str | None = None
    linker_package: str | None = None
    emulator_package: str | None = None
    runner_package: str | None = None
    sysroot_package: str | None = None  # the target's C library that the emulator's -L holds

    def glibc_floor(self) -> tuple[int, int] | None:
        """The libc floor as (major, minor), None where the target declares none."""
        found = LIBC.fullmatch(self.libc or "")
        return (int(found[1]), int(found[2])) if found else None

    def package_for(self, tool: str) -> str | None:
        """The Debian package that provides `tool` ("cc", "linker", "emulator", "runner")."""
        return getattr(self, f"{tool}_package", None)


@dataclass(frozen=True)
class Gpu:
    """The execution model of a data-parallel device (CUDA, OpenCL or Metal)."""

    arch: str | None = None
    sm_count: int | None = None
    warp_size: int | None = None
    max_threads_per_block: int | None = None
    max_threads_per_sm: int | None = None
    shared_mem_per_sm_kib: int | None = None
    shared_mem_per_block_kib: int | None = None
    shared_mem_static_kib: int | None = None  # what a kernel may declare statically
    registers_per_block: int | None = None
    registers_per_sm: int | None = None


@dataclass(frozen=True)
class Fpga:
    """The programmable-logic part and the resource budgets HLS may spend."""

    part: str | None = None
    board: str | None = None
    clock_mhz: int | None = None
    max_clock_mhz: int | None = None
    dsp: int | None = None
    bram36: int | None = None
    uram: int | None = None
    lut: int | None = None
    ff: int | None = None
    hls: str | None = _choice(HLS_FLAVOURS, default=None)


@dataclass(frozen=True)
class Wasm:
    """WebAssembly proposals the generated module may use."""

    simd: bool = False
    threads: bool = False


SECTIONS: dict[str, type] = {
    "device": Device, "isa": Isa, "memory": Memory, "intrinsics": Intrinsics,
    "toolchain": Toolchain, "gpu": Gpu, "fpga": Fpga, "wasm": Wasm,
}
# Sections every target has (empty when the file leaves them out); the others only some kinds.
COMMON_SECTIONS = ("device", "isa", "memory", "intrinsics", "toolchain")
SECTION_KINDS: dict[str, tuple[str, ...]] = {
    "gpu": ("cuda", "opencl", "metal"),
    "fpga": ("fpga",),
    "wasm": ("wasm",),
}
BACKENDS_FOR_KIND: dict[str, tuple[str, ...]] = {
    "cpu": ("llvm", "c"),
    "cuda": ("cuda",),
    "opencl": ("opencl",),
    "metal": ("metal",),
    "wasm": ("wasm",),
    "fpga": ("hls", "c"),
}
_WORKGROUP = ("gpu.warp_size", "gpu.max_threads_per_block", "gpu.shared_mem_per_block_kib")
# What default schedules and backends rely on, per kind; checked after inheritance and detection.
REQUIRED: dict[str, tuple[str, ...]] = {
    "cpu": ("isa.triple", "isa.cpu", "isa.vector_bits", "isa.accumulator_registers", "isa.cores",
            "memory.l1d_kib", "memory.l2_kib", "memory.cache_line"),
    "cuda": ("gpu.arch", "gpu.sm_count", *_WORKGROUP, "gpu.registers_per_block",
             "gpu.shared_mem_static_kib"),
    "opencl": _WORKGROUP,
    "metal": _WORKGROUP,
    "wasm": ("isa.triple", "isa.cpu", "isa.vector_bits", "isa.accumulator_registers", "wasm.simd",
             "wasm.threads"),
    "fpga": ("fpga.part", "fpga.clock_mhz", "fpga.dsp", "fpga.bram36", "fpga.lut", "fpga.hls"),
}


def _value_kind(hint: object) -> str:
    """"int", "float", "str", "bool" or "strs" (a list of strings) for a field's annotation."""
    if typing.get_origin(hint) is tuple:
        return "strs"
    if isinstance(hint, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return {int: "int", float: "float", str: "str", bool: "bool"}[hint]  # type: ignore[index]


# section -> field -> (value kind, allowed values or ()), read off the dataclasses above
FIELD_SPECS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    name: {
        f.name: (_value_kind(typing.get_type_hints(cls)[f.name]), f.metadata.get("choices", ()))
        for f in fields(cls)
    }
    for name, cls in SECTIONS.items()
}

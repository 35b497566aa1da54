"""Detects the machine deepc runs on: LLVM's view of its CPU, plus caches and memory from the OS."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")

# LLVM feature name -> the dot-product intrinsic name target files use
# (AVX2's vpmaddubsw + vpmaddwd: two instructions, the dot of 4 bytes per int32 lane)
_DOT_FEATURES = {"avx512vnni": "avx512_vnni", "avxvnni": "avx_vnni", "dotprod": "sdot",
                 "avx2": "avx2_madd"}


@functools.cache
def llvm_host() -> tuple[str, str, tuple[str, ...]]:
    """(triple, cpu name, enabled features as "+name") of this process, as LLVM sees it.

    Without llvmlite (a board with the runtime only, serving `deepc rpc`): the triple from
    the OS, a generic CPU and no features — enough to tell which bundles run natively."""
    try:
        import llvmlite.binding as llvm
    except ImportError:
        return _platform_triple(), "generic", ()

    # llvm.initialize() raises in llvmlite >= 0.50; the native target is all detection needs
    llvm.initialize_native_target()
    try:
        feature_map = llvm.get_host_cpu_features()
    except RuntimeError:  # LLVM cannot read the features on some hosts; the cpu name still helps
        feature_map = {}
    features = tuple(sorted(f"+{name}" for name, on in feature_map.items() if on))
    return llvm.get_process_triple(), llvm.get_host_cpu_name(), features


def _platform_triple() -> str:
    import platform
    import sys

    machine = platform.machine().lower() or "unknown"
    if sys.platform == "darwin":
        return f"{machine}-apple-darwin"
    if sys.platform == "win32":
        return f"{machine}-pc-windows-msvc"
    abi = "gnueabihf" if machine.startswith("arm") else "gnu"
    return f"{machine}-unknown-linux-{abi}"


def vector_bits_of(features: Iterable[str]) -> int | None:
    """Width of the widest SIMD registers the features enable (None: no SIMD known)."""
    names = {f.lstrip("+") for f in features}
    if "avx512f" in names:
        return 512
    if names & {"avx", "avx2"}:
        return 256
    if names & {"sse", "sse2", "neon", "simd128"}:
        return 128
    return None


def accumulator_registers_of(features: Iterable[str]) -> int:
    """Accumulator registers of a register tile: 24 of AVX-512's 32 (FMAs broadcast their
    scalar operand from memory), 12 of a 16-register file (SSE/AVX) or of NEON's files,
    whose FMAs need the broadcast operands in registers too."""
    return 24 if "avx512f" in {f.lstrip("+") for f in features} else 12


def vector_registers_of(triple: str, features: Iterable[str]) -> int:
    """Architectural vector registers: 32 with AVX-512 or on AArch64, 16 on other x86 (SSE,
    AVX), ARMv7 NEON (16 quad registers) and anything else (wasm runs on one of those)."""
    if "avx512f" in {f.lstrip("+") for f in features}:
        return 32
    return 32 if triple.startswith(("aarch64", "arm64")) else 16


def broadcast_operand_of(features: Iterable[str]) -> bool:
    """Whether a vector FMA can take a scalar broadcast straight from memory as its operand
    (AVX-512's embedded broadcast, {1to16}); elsewhere each broadcast is a load into a
    register of its own (AVX2's vbroadcastss, NEON's ld1r or a lane of a loaded vector)."""
    return "avx512f" in {f.lstrip("+") for f in features}


def has_fma(triple: str, features: Iterable[str]) -> bool:
    names = {f.lstrip("+") for f in features}
    # every AArch64 core has fused multiply-add; ARMv7 has it from VFPv4, x86 from the FMA3 set
    return triple.startswith(("aarch64", "arm64")) or bool(names & {"fma", "vfp4"})


def _size_kib(text: str) -> int:
    """"48K" / "1024K" / "32M" as read from sysfs, in KiB."""
    text = text.strip()
    scale = {"K": 1, "M": 1024, "G": 1024 * 1024}.get(text[-1:].upper())
    return int(text[:-1]) * scale if scale else int(text) // 1024


def read_caches(root: Path | None = None) -> dict[str, int]:
    """Cache sizes and line size of cpu0 from sysfs (or `root`); only what could be read."""
    found: dict[str, int] = {}
    for index in sorted((root or CACHE_DIR).glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _size_kib((index / "size").read_text())
            line = int((index / "coherency_line_size").read_text())
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or level > 3:
            continue
        key = "l1d_kib" if level == 1 else f"l{level}_kib"
        found[key] = size
        if level == 1:
            found["cache_line"] = line
    return found


def _dram_mib() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return None


def detect() -> dict[str, Any]:
    """Overrides for a target table with `isa.detect = true`: what this machine really has.

    Only what could be found is returned, so the file's values stay where the machine cannot
    tell (no SIMD feature LLVM knows, unreadable sysfs).
    """
    triple, cpu, features = llvm_host()
    isa: dict[str, Any] = {"triple": triple, "cpu": cpu, "features": list(features)}
    bits = vector_bits_of(features)
    if bits is not None:
        isa["vector_bits"] = bits
    isa["accumulator_registers"] = accumulator_registers_of(features)
    cores = os.cpu_count()
    if cores:
        isa["cores"] = cores
    memory: dict[str, Any] = dict(read_caches())
    dram = _dram_mib()
    if dram:
        memory["dram_mib"] = dram
    names = {f.lstrip("+") for f in features}
    dot = sorted(v for k, v in _DOT_FEATURES.items() if k in names)
    intrinsics = {"fma": has_fma(triple, features), "dot": dot}
    return {"isa": isa, "memory": memory, "intrinsics": intrinsics}

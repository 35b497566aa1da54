"""An ELF file's needed glibc symbol versions, checked against the target's libc floor.

A dynamically linked program or library names, for each C library symbol it calls, the symbol
version it was linked against (pthread_create@GLIBC_2.34 on a glibc >= 2.34 machine); the
dynamic loader of an older glibc refuses it with "version `GLIBC_2.34' not found". The versions
are read from .gnu.version_r (which versions) and .gnu.version (which symbol needs which).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from deepc.errors import ToolchainError

_GLIBC = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")
Version = tuple[int, ...]


def glibc_versions(path: Path) -> dict[Version, list[str]]:
    """GLIBC_x.y version -> the undefined dynamic symbols bound to it; {} for a static file."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        needed, versym = elf.get_section_by_name(".gnu.version_r"), elf.get_section_by_name(
            ".gnu.version")
        dynsym = elf.get_section_by_name(".dynsym")
        if needed is None or versym is None or dynsym is None:
            return {}
        names: dict[int, Version] = {}
        for _, aux in needed.iter_versions():
            for entry in aux:
                found = _GLIBC.fullmatch(entry.name)
                if found:
                    names[entry["vna_other"]] = tuple(int(g) for g in found.groups() if g)
        out: dict[Version, list[str]] = defaultdict(list)
        for k, symbol in enumerate(dynsym.iter_symbols()):
            index = versym.get_symbol(k)["ndx"]
            if isinstance(index, int) and index in names:
                out[names[index]].append(symbol.name)
        # a version needed with no symbol bound to it still stops the loader
        for version in names.values():
            out.setdefault(version, [])
        return dict(out)


def _text(version: Version) -> str:
    return "GLIBC_" + ".".join(map(str, version))


def check_libc_floor(path: Path, target: Any, member: str) -> None:
    """Raise ToolchainError when `path` (the bundle's `member`) needs a glibc newer than the
    target's floor; nothing to check where the target declares none."""
    floor = target.toolchain.glibc_floor()
    if floor is None:
        return
    newer = {v: s for v, s in glibc_versions(path).items() if v > floor}
    if not newer:
        return
    version = max(newer)
    symbols = ", ".join(sorted(newer[version])[:3]) or "no symbol"
    raise ToolchainError(
        f"{member} built for target {target.name!r} needs {_text(version)} ({symbols}), newer"
        f" than the target's libc floor {target.toolchain.libc}, so it would not load on such a"
        " board — build with zig, which links against the floor (pip install 'deepc[cross]'),"
        " or raise toolchain.libc in a target file that inherits this one")

"""Target descriptions: TOML files in targets/ turned into validated, typed `Target` values."""

from __future__ import annotations

from deepc.target.loader import list_targets, load_target, search_dirs
from deepc.target.sections import (
    BACKENDS,
    KINDS,
    Device,
    Fpga,
    Gpu,
    Intrinsics,
    Isa,
    Memory,
    Toolchain,
    Wasm,
)
from deepc.target.spec import Target

__all__ = [
    "BACKENDS", "KINDS", "Device", "Fpga", "Gpu", "Intrinsics", "Isa", "Memory", "Target",
    "Toolchain", "Wasm", "list_targets", "load_target", "search_dirs",
]

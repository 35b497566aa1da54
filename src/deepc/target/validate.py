"""Checks a target table (one file's, or a resolved one) and turns it into typed sections."""

from __future__ import annotations

import difflib
from typing import Any

from deepc.errors import TargetError
from deepc.target.sections import (
    BACKENDS_FOR_KIND,
    COMMON_SECTIONS,
    COMPILERS,
    FIELD_SPECS,
    LIBC,
    REQUIRED,
    SECTION_KINDS,
    SECTIONS,
)

# Top-level keys; `inherit` and `abstract` steer the loader and never reach a resolved target.
TOP_LEVEL: dict[str, str] = {"name": "str", "description": "str", "inherit": "str",
                             "abstract": "bool"}
LOADER_KEYS = ("inherit", "abstract")

_EXPECT = {
    "int": ("a positive integer", "write a whole number without quotes, e.g. 128"),
    "float": ("a number", "write a plain number without quotes or units, e.g. 3350"),
    "str": ("a string", 'put the value in double quotes, e.g. "cortex-a72"'),
    "bool": ("true or false", "write true or false without quotes"),
    "strs": ("a list of strings", 'write a list of quoted strings, e.g. ["+neon", "+vfp4"]'),
}


def fail(where: str, message: str) -> TargetError:
    """A TargetError whose message starts with the file (or other source) it is about."""
    return TargetError(f"{where}: {message}")


def _show(value: object) -> str:
    return "a table" if isinstance(value, dict) else repr(value)


def _fits(kind: str, value: object) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    if kind == "strs":
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    return isinstance(value, {"str": str, "bool": bool}[kind])


def _unknown(where: str, what: str, dotted: str, known: list[str]) -> TargetError:
    close = difflib.get_close_matches(dotted.rsplit(".", 1)[-1], known, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return fail(where, f"unknown {what} {dotted} — {hint}known: {', '.join(known)}")


def _check_value(where: str, dotted: str, kind: str, choices: tuple[str, ...],
                 value: object) -> None:
    if not _fits(kind, value):
        expected, todo = _EXPECT[kind]
        raise fail(where, f"{dotted} must be {expected}, got {_show(value)} — {todo}")
    if choices and value not in choices:
        raise fail(where, f"{dotted} must be one of {', '.join(choices)}, got {value!r}"
                          " — pick one of those")


def check_table(data: dict[str, Any], where: str) -> None:
    """Raise TargetError on unknown sections or fields, wrong types and bad enum values."""
    for key, value in data.items():
        if key in TOP_LEVEL:
            _check_value(where, key, TOP_LEVEL[key], (), value)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise fail(where, f"{key} must be a table, got {_show(value)}"
                                  f" — write its fields under a [{key}] header")
            specs = FIELD_SPECS[key]
            for name, item in value.items():
                if name not in specs:
                    raise _unknown(where, "field", f"{key}.{name}", list(specs))
                _check_value(where, f"{key}.{name}", *specs[name], item)
        else:
            raise _unknown(where, "key", key, [*TOP_LEVEL, *SECTIONS])


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    section, name = dotted.split(".")
    return data.get(section, {}).get(name)


def _check_kind_rules(data: dict[str, Any], where: str) -> None:
    if "name" not in data:
        raise fail(where, 'name is required — add name = "..." at the top of the file')
    for dotted in ("device.kind", "device.backend"):
        if _lookup(data, dotted) is None:
            raise fail(where, f"{dotted} is required — add it under [device]"
                              " (or inherit a file that has it)")
    kind, backend = data["device"]["kind"], data["device"]["backend"]
    if backend not in BACKENDS_FOR_KIND[kind]:
        raise fail(where, f"device.backend {backend!r} cannot build for a {kind} device"
                          f" — use {' or '.join(BACKENDS_FOR_KIND[kind])}")
    for section, kinds in SECTION_KINDS.items():
        if section in data and kind not in kinds:
            raise fail(where, f"[{section}] describes {', '.join(kinds)} devices, not {kind}"
                              " — remove the section or change device.kind")
    for dotted in REQUIRED[kind]:
        if _lookup(data, dotted) is None:
            section = dotted.split(".")[0]
            raise fail(where, f"{dotted} is required for {kind} targets — add it under"
                              f" [{section}] (or inherit a file that has it)")


def _check_consistency(data: dict[str, Any], where: str) -> None:
    """Figures that contradict each other would make every schedule built on them wrong."""
    if _lookup(data, "wasm.simd") and "+simd128" not in (_lookup(data, "isa.features") or []):
        raise fail(where, 'wasm.simd is true but isa.features lacks "+simd128"'
                          " — add the feature or set simd = false")
    pairs = (("gpu.shared_mem_per_block_kib", "gpu.shared_mem_per_sm_kib"),
             ("gpu.max_threads_per_block", "gpu.max_threads_per_sm"),
             ("fpga.clock_mhz", "fpga.max_clock_mhz"))
    for small, large in pairs:
        low, high = _lookup(data, small), _lookup(data, large)
        if low is not None and high is not None and low > high:
            raise fail(where, f"{small} ({low}) exceeds {large} ({high}) — fix one of them")


def _check_toolchain(data: dict[str, Any], where: str) -> None:
    """The compilers a target prefers exist in the file, and its libc floor is readable."""
    toolchain = data.get("toolchain", {})
    libc = toolchain.get("libc")
    if libc is not None and not LIBC.fullmatch(libc):
        raise fail(where, f"toolchain.libc must read like \"glibc-2.28\", got {libc!r}"
                          " — name the oldest glibc the bundles must load on")
    for name in toolchain.get("compilers", ()):
        if name not in COMPILERS:
            raise fail(where, f"toolchain.compilers lists {name!r} — each entry must be one of"
                              f" {', '.join(COMPILERS)}")
        needs = ("zig_target", "libc") if name == "zig" else ("cc",)
        for key in needs:
            if toolchain.get(key) is None:
                raise fail(where, f"toolchain.compilers lists {name!r} but toolchain.{key} is"
                                  " not set — add it under [toolchain]")


def _build_section(section: str, values: dict[str, Any]) -> Any:
    specs = FIELD_SPECS[section]
    converted = {
        name: tuple(v) if specs[name][0] == "strs" else float(v) if specs[name][0] == "float"
        else v
        for name, v in values.items()
    }
    return SECTIONS[section](**converted)


def resolve(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a resolved target table; return the keyword arguments of `Target`."""
    check_table(data, where)
    for key in LOADER_KEYS:
        if key in data:
            raise fail(where, f"{key} is only meaningful in a target file"
                              " — load the file with load_target() instead")
    _check_kind_rules(data, where)
    _check_consistency(data, where)
    _check_toolchain(data, where)
    kwargs: dict[str, Any] = {"name": data["name"], "description": data.get("description", "")}
    for section in SECTIONS:
        if section in data or section in COMMON_SECTIONS:
            kwargs[section] = _build_section(section, data.get(section, {}))
    return kwargs

"""Packaging for Metal targets: the MSL source, the device plan (packagers/arena) and a host
program with its build script (runtime/metal: Objective-C; Apple's tools build it on macOS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepc.compiler.packagers.arena import PLAN, device_plan, plan_text
from deepc.compiler.packagers.common import write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS

SOURCE = "lib/kernels.metal"
HOST = Path(__file__).resolve().parents[2] / "runtime" / "metal"
FILES = {"example/main.m": "main.m", "example/build.sh": "build.sh", "README.md": "README.md"}


@PACKAGERS.register("metal")
def write_metal_bundle(compiled: Any, path: Path) -> Path:
    plan = device_plan(compiled)
    files: dict[str, Any] = {member: (HOST / name).read_text() for member, name in FILES.items()}
    files[PLAN] = plan_text(plan, "gpu")
    extra = {"device_plan": plan, "source": SOURCE, "plan_text": PLAN,
             "checked": "MSL syntax-checked as C++ with clang and a shim header; not run on"
                        " Apple hardware"}
    return write_model_bundle(compiled, path, library=compiled.module.source.encode(),
                              extra=extra, extra_files=files, library_member=SOURCE)

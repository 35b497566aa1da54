"""Packagers: a compiled model to its bundle, one per device kind, registered in PACKAGERS."""

from __future__ import annotations

from typing import Any

from deepc.compiler.packagers import (  # noqa: F401  (each registers itself)
    cpu,
    cuda,
    fpga,
    metal,
    opencl,
    wasm,
)
from deepc.compiler.packagers.registry import PACKAGERS, Packager
from deepc.errors import TargetError
from deepc.registry import NotRegisteredError


def packager_for(target: Any) -> Packager:
    try:
        return PACKAGERS.get(target.kind)
    except NotRegisteredError:
        raise TargetError(f"target {target.name!r} is a {target.kind} device, for which this"
                          " version of deepc writes no bundles") from None


__all__ = ["PACKAGERS", "Packager", "packager_for"]

"""The op library: every module here registers its ops into `registry.REGISTRY` on import."""

from __future__ import annotations

import importlib
import pkgutil

from deepc.ops.registry import REGISTRY, FusionKind, Op, all_ops, get_op

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in ("registry", "common"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["REGISTRY", "FusionKind", "Op", "all_ops", "get_op"]

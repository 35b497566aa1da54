"""Backends: loop IR to code for a family of targets, each registered in BACKENDS under the
name a target's `device.backend` gives (base.py says what one provides)."""

from deepc.backends.base import (
    BACKENDS,
    Backend,
    CompileOptions,
    KernelSchedule,
    Launch,
    Module,
)
from deepc.backends.cuda import backend as _cuda  # noqa: F401  (registers "cuda")
from deepc.backends.hls import backend as _hls  # noqa: F401  (registers "hls")
from deepc.backends.llvm import backend as _llvm  # noqa: F401  (registers "llvm")
from deepc.backends.metal import backend as _metal  # noqa: F401  (registers "metal")
from deepc.backends.opencl import backend as _opencl  # noqa: F401  (registers "opencl")
from deepc.backends.wasm import backend as _wasm  # noqa: F401  (registers "wasm")

__all__ = ["BACKENDS", "Backend", "CompileOptions", "KernelSchedule", "Launch", "Module"]

"""The Metal backend registered: the CUDA backend's GPU stages rendered in Metal Shading
Language. Nothing is built here: Apple's `metal`/`metallib` exist only on macOS, and the bundle
carries the script that runs them (packagers/metal)."""

from __future__ import annotations

from deepc.backends.base import BACKENDS
from deepc.backends.gpu.backend import GpuBackend
from deepc.backends.metal.dialect import METAL


class MetalBackend(GpuBackend):
    name = "metal"
    dialect = METAL


BACKENDS.add("metal", MetalBackend())

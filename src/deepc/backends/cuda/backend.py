"""The CUDA backend registered: each kernel's GPU stages rendered as one CUDA C file, built
into a cubin by nvcc."""

from __future__ import annotations

from typing import Any

from deepc.backends.base import BACKENDS
from deepc.backends.cuda.build import build_cubin
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.backend import GpuBackend


class CudaBackend(GpuBackend):
    name = "cuda"
    dialect = CUDA
    build_step = "nvcc"

    def binary(self, source: str, target: Any) -> bytes:
        return build_cubin(source, target)


BACKENDS.add("cuda", CudaBackend())

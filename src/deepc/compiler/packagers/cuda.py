"""Packaging for CUDA targets: the cubin, its source and the device plan (packagers/arena)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepc.compiler.packagers.arena import device_plan
from deepc.compiler.packagers.common import write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS

CUBIN = "lib/kernels.cubin"
SOURCE = "lib/kernels.cu"


@PACKAGERS.register("cuda")
def write_cuda_bundle(compiled: Any, path: Path) -> Path:
    extra = {"device_plan": device_plan(compiled), "source": SOURCE}
    return write_model_bundle(compiled, path, library=compiled.module.binary, extra=extra,
                              extra_files={SOURCE: compiled.module.source},
                              library_member=CUBIN)

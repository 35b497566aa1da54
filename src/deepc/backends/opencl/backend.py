"""The OpenCL backend registered: the CUDA backend's GPU stages rendered in OpenCL C. Nothing
is built at compile time (OpenCL builds kernels for the device at load); where clang is
present the source is syntax-checked, so a renderer bug fails the compile, not the load."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from deepc.backends.base import BACKENDS
from deepc.backends.gpu.backend import GpuBackend
from deepc.backends.opencl.dialect import OPENCL
from deepc.cache import atomic_output, cache_dir
from deepc.errors import ToolchainError

CLANG_CHECK = ("-x", "cl", "-cl-std=CL2.0", "-fsyntax-only")


def check_opencl_c(source: str) -> None:
    """clang -fsyntax-only on the source when clang is installed; a checked source is
    remembered in the deepc cache."""
    clang = shutil.which("clang")
    if clang is None:
        return
    key = hashlib.sha256("\0".join([source, clang, *CLANG_CHECK]).encode()).hexdigest()[:32]
    mark = cache_dir("opencl-check") / key
    if mark.exists():
        return
    with tempfile.TemporaryDirectory(prefix="deepc-cl-") as tmp:
        path = Path(tmp) / "kernels.cl"
        path.write_text(source)
        done = subprocess.run([clang, *CLANG_CHECK, str(path)], capture_output=True,
                              text=True, check=False)
    if done.returncode != 0:
        first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr)
        raise ToolchainError(f"the generated OpenCL C does not compile with clang: "
                             f"{first.strip()} — a deepc bug: please report it with the model")
    with atomic_output(mark) as tmp_path:
        tmp_path.write_text("ok\n")


class OpenCLBackend(GpuBackend):
    name = "opencl"
    dialect = OPENCL
    build_step = "clang -fsyntax-only"

    def binary(self, source: str, target: Any) -> bytes:
        del target
        check_opencl_c(source)
        return b""


BACKENDS.add("opencl", OpenCLBackend())

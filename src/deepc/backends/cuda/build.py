"""CUDA C source to a cubin with nvcc, cached by source, compiler and architecture."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from deepc.cache import atomic_output, cache_dir
from deepc.cache_evict import evict, touch
from deepc.errors import ToolchainError

NVCC_FLAGS = ("-O3", "-std=c++17", "-Xptxas", "-O3")


def nvcc_path(target: Any) -> str:
    cc = getattr(target.toolchain, "cc", None) or "nvcc"
    found = shutil.which(cc)
    if found is None:
        package = getattr(target.toolchain, "cc_package", None) or "nvidia-cuda-toolkit"
        raise ToolchainError(f"{cc} not found: target {target.name!r} builds CUDA kernels with"
                             f" it — install the CUDA toolkit (Debian package {package})")
    return found


def build_cubin(source: str, target: Any) -> bytes:
    """nvcc -cubin for the target's arch; the result is cached under the deepc cache."""
    nvcc = nvcc_path(target)
    arch = target.arch
    argv_flags = [*NVCC_FLAGS, f"-arch={arch}", "-cubin"]
    st = Path(nvcc).resolve().stat()
    key = hashlib.sha256("\0".join([source, nvcc, str(st.st_size), str(st.st_mtime_ns),
                                    *argv_flags]).encode()).hexdigest()[:32]
    cached = cache_dir("cuda") / f"{key}.cubin"
    try:
        data = cached.read_bytes()
        touch(cached)
        return data
    except FileNotFoundError:  # not built yet, or evicted: build it
        pass
    with tempfile.TemporaryDirectory(prefix="deepc-nvcc-") as tmp:
        src, out = Path(tmp) / "kernels.cu", Path(tmp) / "kernels.cubin"
        src.write_text(source)
        done = subprocess.run([nvcc, *argv_flags, "-o", str(out), str(src)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = (done.stderr or done.stdout).strip().splitlines()[-12:]
            raise ToolchainError(f"nvcc failed to build the kernels for {arch}"
                                 f" (exit {done.returncode}): {' | '.join(log)}"
                                 " — inspect lib/kernels.cu with `deepc inspect-ir`")
        data = out.read_bytes()
    with atomic_output(cached) as tmp_path:
        tmp_path.write_bytes(data)
    evict(keep=cached)
    return data

"""An OpenCL bundle's host program: example/main.c (runtime/c/opencl_main.c, the same for every
model, reading the device plan from lib/plan.txt) and its Makefile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from deepc.errors import ToolchainError
from deepc.runtime.c_example import MAKE_CLEAN

MAIN_SOURCE = Path(__file__).resolve().parent / "c" / "opencl_main.c"
MAIN = "example/main.c"
MAKEFILE = "example/Makefile"
RUNNER = "bin/run_model"
CFLAGS = ("-std=c11", "-O2", "-Wall")
LDLIBS = ("-lOpenCL",)


def makefile_text() -> str:
    return "\n".join([
        "# Builds run_model (see main.c) against the OpenCL headers and ICD loader",
        "# (Debian: opencl-headers ocl-icd-opencl-dev). Then: ./run_model .. INPUT... OUTPUT...",
        "CC = cc",
        f"CFLAGS = {' '.join(CFLAGS)}",
        f"LDLIBS = {' '.join(LDLIBS)}",
        "",
        "run_model: main.c",
        "\t$(CC) $(CFLAGS) -o $@ main.c $(LDLIBS)",
        "",
        *MAKE_CLEAN,
    ])


def example_files() -> dict[str, str]:
    return {MAIN: MAIN_SOURCE.read_text(), MAKEFILE: makefile_text()}


def build_host_program(out: Path) -> str | None:
    """Compile main.c into `out` with `cc`; None when built, else why it was skipped (no C
    compiler, or no OpenCL headers or loader here). Any other failure is raised."""
    cc = shutil.which("cc")
    if cc is None:
        return "no C compiler (cc) on this machine"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([cc, *CFLAGS, "-o", str(out), str(MAIN_SOURCE), *LDLIBS],
                          capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return None
    if "CL/cl.h" in done.stderr or "lOpenCL" in done.stderr:
        return ("the OpenCL headers or ICD loader are missing here (Debian: opencl-headers"
                " ocl-icd-opencl-dev); build it with example/Makefile")
    raise ToolchainError(f"cc failed on the OpenCL host program: {done.stderr.strip()[:300]}"
                         " — a deepc bug: please report it")

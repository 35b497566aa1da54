"""OpenCL failures are one line that names the fix, with a non-zero exit: no platform, no
device of the wanted type, a kernel that does not build."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepc.cli import main
from deepc.errors import ToolchainError
from deepc.runtime.opencl_model import DEVICE_ENV
from tests.conftest import shared_model

pytestmark = [pytest.mark.toolchain, pytest.mark.models]


def test_no_platform(opencl_bundle: Callable[[Path], Path], tmp_path: Path) -> None:
    # the ICD loader finds no driver in an empty vendors directory
    env = {**os.environ, "OCL_ICD_VENDORS": str(tmp_path)}
    env.pop("OCL_ICD_FILENAMES", None)
    done = subprocess.run([sys.executable, "-m", "deepc.cli", "run",
                           str(opencl_bundle(shared_model("lstm")))],
                          capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 3, done.stderr
    assert "no OpenCL platform" in done.stderr and "pocl-opencl-icd" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_no_device_of_the_wanted_type(opencl_bundle: Callable[[Path], Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "")  # restored after: --device sets it for the process
    result = CliRunner().invoke(main, ["run", str(opencl_bundle(shared_model("lstm"))),
                                       "--device", "accelerator"])
    assert result.exit_code == 3
    assert "no OpenCL device matches 'accelerator'; found: 0:0" in result.output
    assert "(cpu)" in result.output


def test_kernel_build_failure_names_the_kernel(opencl_bundle: Callable[[Path], Path]) -> None:
    del opencl_bundle  # skips without OpenCL
    from deepc.runtime.opencl_model import _opencl, build_program, pick_device

    cl = _opencl()
    device = pick_device(cl, "cpu")
    source = ("__kernel void k000_ok(__global float* a) { a[0] = 1.0f; }\n"
              "__kernel void k001_bad(__global float* a) {\n  a[0] = undefined_name;\n}\n")
    with pytest.raises(ToolchainError, match=r"kernel k001_bad .*undefined_name") as info:
        build_program(cl, cl.Context([device]), device, source)
    assert "\n" not in str(info.value)

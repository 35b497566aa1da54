"""Packaging for OpenCL targets: the OpenCL C source (built for the device at load), the
device plan (packagers/arena), and a C host program that runs the bundle without Python,
prebuilt into bin/ where this machine has the OpenCL headers and loader."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepc.compiler.packagers.arena import PLAN, device_plan, plan_text
from deepc.compiler.packagers.common import write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS
from deepc.runtime.opencl_example import RUNNER, build_host_program, example_files

SOURCE = "lib/kernels.cl"


@PACKAGERS.register("opencl")
def write_opencl_bundle(compiled: Any, path: Path) -> Path:
    plan = device_plan(compiled)
    files: dict[str, Any] = {**example_files(),
                             PLAN: plan_text(plan, compiled.target.device.type)}
    extra: dict[str, Any] = {"device_plan": plan, "source": SOURCE, "plan_text": PLAN}
    with tempfile.TemporaryDirectory(prefix="deepc-bundle-") as tmp:
        runner = Path(tmp) / "run_model"
        skipped = build_host_program(runner)
        if skipped is None:
            files[RUNNER] = runner
            extra["runner"] = RUNNER
        else:
            extra["runner_skipped"] = skipped
        return write_model_bundle(compiled, path, library=compiled.module.source.encode(),
                                  extra=extra, extra_files=files, library_member=SOURCE)

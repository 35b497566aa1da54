"""The OpenCL C dialect: the same renderer prints the tiled SIMT kernels of the shared vision
models in OpenCL C, which clang accepts (building and running OpenCL is not tested here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from deepc.backends.gpu.render import render_cuda
from deepc.backends.opencl.dialect import OPENCL
from deepc.compiler.pipeline import group_kernel, load_graph
from deepc.passes import PassContext, run_pipeline
from deepc.passes.fuse import groups_of
from deepc.target import load_target

MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
VISION = ("resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_b0")


def _opencl(model: str) -> tuple[str, dict]:
    target = load_target("opencl-gpu")
    ctx = PassContext(2)
    ctx.target = target
    graph = run_pipeline(load_graph(MODELS / f"{model}.onnx", {"input": (1, 3, 224, 224)}), 2,
                         ctx)
    kernels = [group_kernel(graph, group, k) for k, group in enumerate(groups_of(graph))]
    source, _, _, records = render_cuda(kernels, target, OPENCL)
    return source, records


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang checks the OpenCL C here")
@pytest.mark.parametrize("model", VISION)
def test_vision_models_render_as_opencl_c(model: str, tmp_path: Path) -> None:
    if not (MODELS / f"{model}.onnx").exists():
        pytest.skip(f"{model}.onnx is not in {MODELS}")
    source, records = _opencl(model)
    assert "simt" in str(records) and "mma" not in source  # SIMT tiles only
    assert "__local float g_As" in source and "barrier(CLK_LOCAL_MEM_FENCE)" in source
    assert "__syncthreads" not in source and "threadIdx" not in source
    path = tmp_path / f"{model}.cl"
    path.write_text(source)
    done = subprocess.run(["clang", "-x", "cl", "-cl-std=CL2.0", "-fsyntax-only", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

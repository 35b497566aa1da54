"""ResNet-18 at batch 32 with TF32 through nvcc for sm_90: its tiled convs pipelined by
cp.async, ptxas reporting no spills, and the launches carrying their dynamic shared memory
within the target's per-block limit."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import deepc
from deepc.backends.cuda.build import NVCC_FLAGS
from tests.conftest import shared_model


@pytest.mark.toolchain
@pytest.mark.models
@pytest.mark.filterwarnings("ignore::deepc.errors.FixedDimReplaced")  # batch 1 -> 32 on purpose
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH: it builds CUDA")
def test_pipelined_resnet18_builds_without_spills(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deepc.schedule import gpu_gemm_match

    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", True)  # the rings as the default
    compiled = deepc.compile(shared_model("resnet18"), "cuda-sm90",
                             input_shapes={"input": (32, 3, 224, 224)}, allow_tf32=True)
    launches = [lc for ls in compiled.module.launches.values() for lc in ls]
    tiled = [lc for lc in launches if "gemm" in lc.note]
    assert tiled and all("cp.async" in lc.note and lc.shared > 0 for lc in tiled)
    limit = compiled.target.shared_mem_per_block_kib * 1024
    assert all(lc.shared <= limit for lc in launches)
    src = tmp_path / "kernels.cu"
    src.write_text(compiled.module.source)
    done = subprocess.run(["nvcc", *NVCC_FLAGS, f"-arch={compiled.target.arch}", "-cubin",
                           "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(src)],
                          capture_output=True, text=True, check=True)
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", done.stderr)
    assert spills and all(s == ("0", "0") for s in spills)

"""ResNet-18 and a DenseNet block at batch 32 with TF32 through nvcc for sm_90: tiled convs
fetched through registers or pipelined by cp.async, reading their padding in place and (the
DenseNet block) applying BN + ReLU prologues as they load; ptxas reporting no spills, and
the launches carrying their dynamic shared memory within the target's per-block limit; and
the 128x128 tiles of 64x64 warp tiles (WIDE_BY_DEFAULT) without spills."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import deepc
from deepc.backends.cuda.build import NVCC_FLAGS
from tests.backends.test_gpu_gemm_fused import dense_block
from tests.conftest import shared_model

needs_nvcc = pytest.mark.skipif(
    shutil.which("nvcc") is None, reason="nvcc not on PATH: it builds CUDA"
)


def _spills(compiled, tmp_path) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    src = tmp_path / "kernels.cu"
    src.write_text(compiled.module.source)
    done = subprocess.run(
        [
            "nvcc",
            *NVCC_FLAGS,
            f"-arch={compiled.target.arch}",
            "-cubin",
            "-Xptxas",
            "-v",
            "-o",
            str(tmp_path / "k.cubin"),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", done.stderr)


@pytest.mark.toolchain
@pytest.mark.models
@pytest.mark.filterwarnings("ignore::deepc.errors.FixedDimReplaced")  # batch 1 -> 32 on purpose
@needs_nvcc
@pytest.mark.parametrize("model", ["resnet18", "dense_block"])
@pytest.mark.parametrize("ring", [False, True])
def test_tiled_convs_build_without_spills(model: str, ring: bool, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deepc.schedule import gpu_gemm_match

    monkeypatch.setattr(gpu_gemm_match, "RING_BY_DEFAULT", ring)  # the rings as the default
    source = dense_block(32, 64, 56) if model == "dense_block" else shared_model(model)
    shapes = {} if model == "dense_block" else {"input": (32, 3, 224, 224)}
    compiled = deepc.compile(source, "cuda-sm90", input_shapes=shapes, allow_tf32=True)
    launches = [lc for ls in compiled.module.launches.values() for lc in ls]
    tiled = [lc for lc in launches if "gemm" in lc.note]
    assert tiled and all(("cp.async" in lc.note and lc.shared > 0) == ring for lc in tiled)
    limit = compiled.target.shared_mem_per_block_kib * 1024
    assert all(lc.shared <= limit for lc in launches)
    assert "conv_pad" not in compiled.module.source  # every padded conv is tiled here
    if model == "dense_block":  # both BN + ReLUs before 1x1 convs are their prologues
        assert sum("mul_add_relu_conv" in k for k in compiled.module.launches) == 2
    spills = _spills(compiled, tmp_path)
    assert spills and all(s == ("0", "0") for s in spills)


@pytest.mark.toolchain
@pytest.mark.models
@pytest.mark.filterwarnings("ignore::deepc.errors.FixedDimReplaced")  # batch 1 -> 32 on purpose
@needs_nvcc
def test_wide_tiles_build_without_spills(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """ResNet-18 at batch 32 with WIDE_BY_DEFAULT (and one block per SM enough for it): its
    128-wide stage takes 128x128 tiles of 64x64 warp tiles (128 accumulators a thread)
    within 2 blocks per SM, without spills."""
    from deepc.schedule import gpu_gemm, gpu_gemm_match

    monkeypatch.setattr(gpu_gemm_match, "WIDE_BY_DEFAULT", True)
    monkeypatch.setattr(gpu_gemm_match, "WIDE_WAVES", 1.0)
    # with EDGE_GUARDS_ONLY too, the residual conv k010 spills 16 bytes (its epilogue's
    # loads batched by nvcc beside 128 accumulators); ResNet-50's wide tiles do not
    monkeypatch.setattr(gpu_gemm, "EDGE_GUARDS_ONLY", False)
    compiled = deepc.compile(shared_model("resnet18"), "cuda-sm90",
                             input_shapes={"input": (32, 3, 224, 224)}, allow_tf32=True)
    notes = [lc.note for ls in compiled.module.launches.values() for lc in ls]
    assert any("tile 128x128x16 mma" in n for n in notes)
    spills = _spills(compiled, tmp_path)
    assert spills and all(s == ("0", "0") for s in spills)

"""ResNet-18 and a DenseNet block at batch 32 with TF32 through nvcc for sm_90: tiled convs
fetched through registers or pipelined by cp.async, reading their padding in place and (the
DenseNet block) applying BN + ReLU prologues as they load; ptxas reporting no spills, and
the launches carrying their dynamic shared memory within the target's per-block limit."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

import deepc
from deepc.backends.cuda.build import NVCC_FLAGS
from tests.conftest import shared_model

needs_nvcc = pytest.mark.skipif(
    shutil.which("nvcc") is None, reason="nvcc not on PATH: it builds CUDA"
)


def _dense_block():  # type: ignore[no-untyped-def]
    """BN + ReLU, 1x1 conv (+ BN + ReLU folded), 3x3 conv, concat; then BN + ReLU after the
    concat and the next 1x1 conv, as in DenseNet-121's first block at batch 32."""
    from onnx import helper

    from deepc.frontends.onnx import convert

    rng = np.random.default_rng(0)
    inits: dict[str, np.ndarray] = {}

    def const(name: str, shape: tuple[int, ...]) -> str:
        inits[name] = (rng.random(shape) + 0.5).astype(np.float32)
        return name

    def bn_relu(x: str, c: int, out: str) -> list:
        return [
            helper.make_node("Mul", [x, const(f"{out}_s", (c, 1, 1))], [f"{out}_m"]),
            helper.make_node("Add", [f"{out}_m", const(f"{out}_b", (c, 1, 1))], [f"{out}_a"]),
            helper.make_node("Relu", [f"{out}_a"], [out]),
        ]

    def conv(x: str, ci: int, co: int, k: int, out: str) -> list:
        w = const(f"{out}_w", (co, ci, k, k))
        return [helper.make_node("Conv", [x, w], [out], pads=[k // 2] * 4)]

    nodes = [
        *bn_relu("x", 64, "r1"),
        *conv("r1", 64, 128, 1, "c1"),
        *bn_relu("c1", 128, "r2"),
        *conv("r2", 128, 32, 3, "c2"),
        helper.make_node("Concat", ["x", "c2"], ["cat"], axis=1),
        *bn_relu("cat", 96, "r3"),
        *conv("r3", 96, 128, 1, "y"),
    ]
    proto = helper.make_graph(
        nodes,
        "dense",
        [helper.make_tensor_value_info("x", 1, [32, 64, 56, 56])],
        [
            helper.make_tensor_value_info("y", 1, None),
            helper.make_tensor_value_info("cat", 1, None),
        ],
        initializer=[helper.make_tensor(k, 1, v.shape, v.ravel()) for k, v in inits.items()],
    )
    return convert(helper.make_model(proto, opset_imports=[helper.make_opsetid("", 17)]))


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
    source = _dense_block() if model == "dense_block" else shared_model(model)
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

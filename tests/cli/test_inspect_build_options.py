"""`deepc inspect-ir` shows the kernels that `deepc compile` builds with the same build
options: --allow-tf32 (TF32 tensor-core tiles on CUDA) and --tuning-log (the tuned knobs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from tests.helpers import node_model
from tests.test_cli import run


def test_allow_tf32_shows_the_tensor_core_kernels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    model = tmp_path / "mm.onnx"  # large enough for a tiled product on an H100
    onnx.save(node_model("MatMul", {"a": rng.random((1024, 1024), np.float32),
                                    "b": rng.random((1024, 1024), np.float32)},
                         initializers=["b"]), model)
    texts = {}
    for flags in ((), ("--allow-tf32",)):
        code, out, err = run("inspect-ir", str(model), "--target", "cuda-sm90", "--stage",
                             "schedule", "--json", *flags)
        assert code == 0, err
        texts[flags] = "\n".join(json.loads(out).values())
    assert "mma_tf32=False" in texts[()] and "mma_tf32=True" not in texts[()]
    assert "mma_tf32=True" in texts[("--allow-tf32",)]


def test_a_missing_tuning_log_is_one_line_before_any_work(tmp_path: Path) -> None:
    code, _, err = run("inspect-ir", str(tmp_path / "absent.onnx"), "--stage", "loop",
                       "--tuning-log", str(tmp_path / "none.jsonl"))
    assert code == 2 and "run deepc tune first" in err and "Traceback" not in err

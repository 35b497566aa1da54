"""`deepc compile`, `deepc run` and the lower `inspect-ir` stages on the example model."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest

from deepc.frontends import load
from deepc.runtime.inputs import random_inputs
from tests.helpers import run_ort
from tests.test_cli import EXAMPLE, assert_one_line_error, run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "tiny.tar"
    code, stdout, err = run("compile", str(EXAMPLE), "--target", "host", "-o", str(out),
                            "--json")
    assert code == 0, err
    stats = json.loads(stdout)
    assert {"kernels", "arena_bytes", "params_bytes", "compile_seconds"} <= set(stats)
    assert stats["kernels"] > 0 and stats["params_bytes"] > 0
    return out


def test_bundle_layout(bundle: Path) -> None:
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"manifest.json", "lib/model.so", "params.bin", "include/deepc_model.h"} <= names
    assert set(manifest["files"]) >= {"lib/model.so", "params.bin", "include/deepc_model.h"}
    assert manifest["inputs"][0]["name"] == "input"


def test_run_with_input_file_matches_onnxruntime(bundle: Path, tmp_path: Path) -> None:
    feeds = random_inputs(load(EXAMPLE), seed=5)
    np.save(tmp_path / "x.npy", feeds["input"])
    code, _, err = run("run", str(bundle), "--input", f"input={tmp_path / 'x.npy'}",
                       "--output-dir", str(tmp_path / "out"))
    assert code == 0, err
    got = np.load(tmp_path / "out" / "probs.npy")
    want = run_ort(onnx.load(str(EXAMPLE)), feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


def test_run_random_inputs_are_seeded(bundle: Path, tmp_path: Path) -> None:
    outs = []
    for k in range(2):
        code, _, err = run("run", str(bundle), "--seed", "3", "-d", str(tmp_path / f"o{k}"))
        assert code == 0, err
        outs.append(np.load(tmp_path / f"o{k}" / "probs.npy"))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_corrupted_library_is_refused(bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    with tarfile.open(bundle) as src, tarfile.open(bad, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "lib/model.so":
                data = data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]
            dst.addfile(member, io.BytesIO(data))
    code, _, err = run("run", str(bad))
    assert_one_line_error(code, err, 2, "lib/model.so", "checksum")


def test_run_rejects_wrong_input_shape(bundle: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    code, _, err = run("run", str(bundle), "--input", f"input={tmp_path / 'x.npy'}")
    assert_one_line_error(code, err, 2, "input")


def test_compile_failure_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "never.tar"
    code, _, err = run("compile", str(EXAMPLE), "--target", "nosuch", "-o", str(out))
    assert_one_line_error(code, err, 2, "nosuch")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stage", ["loop", "source", "asm"])
def test_inspect_lower_stages(stage: str) -> None:
    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", stage, "-O", "0",
                         "--kernel", "k000_conv", "--json")
    assert code == 0, err
    text = json.loads(out)["k000_conv"]
    marker = {"loop": "parallel for", "source": "define", "asm": "k000_conv"}[stage]
    assert marker in text


def test_inspect_unknown_kernel() -> None:
    code, _, err = run("inspect-ir", str(EXAMPLE), "--stage", "loop", "--kernel", "nope")
    assert code != 0 and "nope" in err

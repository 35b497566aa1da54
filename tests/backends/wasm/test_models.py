"""The shared models as wasm bundles in Node, against onnxruntime on this CPU; `deepc run`
and `deepc bench --compare onnxruntime-web` on a wasm bundle."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest

import deepc
from deepc.bench import bench_model
from deepc.runtime.wasm_model import WasmModel
from tests.backends.wasm.conftest import need_toolchain
from tests.conftest import ROOT, SHARED_MODELS, shared_model
from tests.test_cli import run

pytestmark = [pytest.mark.toolchain, pytest.mark.xdist_group("wasm")]

RTOL, ATOL = 1e-3, 1e-4
IMPORT, EXPORT = 2, 7  # wasm section ids


def section_ids(wasm: bytes) -> list[int]:
    """The ids of a module's sections, in order (each: id byte, LEB128 size, contents)."""
    ids, pos = [], 8
    while pos < len(wasm):
        ids.append(wasm[pos])
        size, shift, pos = 0, 0, pos + 1
        while True:
            byte = wasm[pos]
            size |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if byte < 0x80:
                break
        pos += size
    return ids


@pytest.mark.models
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_in_node_matches_onnxruntime(name: str, wasm_bundles) -> None:  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    model = deepc.load(wasm_bundles[name])
    assert isinstance(model, WasmModel)
    feeds = model.random_inputs(seed=1)
    ours = model.run(feeds)
    session = ort.InferenceSession(str(shared_model(name)), providers=["CPUExecutionProvider"])
    for (out, got), want in zip(ours.items(), session.run(None, feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{name}: {out}")


def test_bundle_layout(wasm_bundles) -> None:  # type: ignore[no-untyped-def]
    path = wasm_bundles[str(ROOT / "examples" / "tiny_cnn.onnx")]
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        wasm = tar.extractfile("lib/model.wasm").read()  # type: ignore[union-attr]
    assert {"lib/model.wasm", "lib/model.mjs", "params.bin", "manifest.json",
            "example/index.html"} <= names
    assert manifest["library"] == "lib/model.wasm" and manifest["loader"] == "lib/model.mjs"
    assert wasm[:4] == b"\0asm"
    sections = section_ids(wasm)
    assert IMPORT not in sections and EXPORT in sections  # no libc or JS function is called


def test_deepc_run_on_a_wasm_bundle(wasm_bundles) -> None:  # type: ignore[no-untyped-def]
    path = wasm_bundles[str(ROOT / "examples" / "tiny_cnn.onnx")]
    code, out, err = run("run", str(path), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["probs"]["shape"] == [1, 10]
    assert 0 < summary["probs"]["min"] <= summary["probs"]["max"] < 1


@pytest.mark.models
def test_bench_against_onnxruntime_web() -> None:
    need_toolchain()
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (it installs onnxruntime-web) — `apt-get install npm`")
    result = bench_model(shared_model("lstm"), "wasm32-simd", compare="onnxruntime-web",
                         runs=3, warmup=1)
    row = result.to_dict()
    assert row["threads"] == 1 and row["outputs_match"] is True
    assert row["onnxruntime-web_ms"] > 0 and row["ratio"] > 0

"""runtime/zoo.py, the zoo's table: the torch peer of `deepc bench --compare torch` is the very
model tools/zoo.py exported (checked against the exported file through onnxruntime), names
outside the zoo fall back to torchvision, and a missing library is a one-line error."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from deepc.errors import DeepcError, InputError, ToolchainError
from deepc.runtime import zoo
from deepc.runtime.cuda_bench import torch_peers

HAS_ZOO = all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "timm",
                                                    "transformers"))
needs_zoo = pytest.mark.skipif(not HAS_ZOO, reason="needs the zoo extra: pip install"
                               " 'deepc[zoo]' (torch, torchvision, timm, transformers)")


def test_tools_zoo_exports_the_packages_table() -> None:
    from tests.test_zoo_tool import load_tool

    assert load_tool().MODELS is zoo.MODELS
    assert {m.source for m in zoo.MODELS} == {"torchvision", "timm", "transformers"}


@pytest.mark.parametrize("missing, model", [("torch", "deit_tiny_patch16_224"),
                                            ("timm", "convmixer_256_8"),
                                            ("transformers", "gpt2_4l")])
def test_a_missing_library_is_one_line(monkeypatch: pytest.MonkeyPatch, missing: str,
                                       model: str) -> None:
    if missing != "torch" and not HAS_ZOO:
        pytest.skip("torch is missing too, and the error names it first")
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    with pytest.raises(ToolchainError) as e:
        zoo.zoo_model(model).build()
    message = str(e.value)
    assert "\n" not in message and missing in message and "deepc[zoo]" in message


def test_the_peer_without_torch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ToolchainError, match=r"needs torch .*deepc\[zoo\]"):
        torch_peers("gpt2_4l", (32, 128), allow_tf32=False)


def _export(name: str, out: Path) -> Path:
    from tests.test_zoo_tool import load_tool

    path = out / f"{name}.onnx"
    load_tool().export(zoo.BY_NAME[name], path)
    return path


@needs_zoo
@pytest.mark.parametrize("name, shape", [("convmixer_256_8", (2, 3, 224, 224)),
                                         ("gpt2_4l", (2, 128))])
def test_the_peer_is_the_exported_model(tmp_path: Path, name: str,
                                        shape: tuple[int, ...]) -> None:
    """Built again with the exporter's seed, the peer computes what the exported file does:
    the same architecture and weights (timm's constructor for convmixer, transformers' with
    token ids for gpt2; both symbolic in the batch)."""
    import onnxruntime as ort
    import torch

    path = _export(name, tmp_path)
    entry = zoo.zoo_model(name)
    torch.manual_seed(0)
    module = entry.build().eval()
    x = zoo.example_input(entry, shape)
    assert x.dtype == (torch.int64 if entry.tokens else torch.float32)
    with torch.no_grad():
        ours = module(x).numpy()
    theirs = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


@needs_zoo
def test_names_outside_the_zoo_are_torchvision_constructors() -> None:
    entry = zoo.zoo_model("resnet18")
    assert entry.source == "torchvision" and not entry.tokens
    assert type(entry.build()).__name__ == "ResNet"
    with pytest.raises(InputError, match="no zoo or torchvision model 'model'"):
        zoo.zoo_model("model")


@needs_zoo
def test_the_peer_needs_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the peer would run")
    with pytest.raises(DeepcError, match="needs a CUDA GPU"):
        torch_peers("convmixer_256_8", (1, 3, 224, 224), allow_tf32=False)

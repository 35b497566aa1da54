"""tools/zoo.py, the model zoo's exporter: its table of architectures (no torch needed to read
it; exporting needs the `zoo` extra and runs in `make bench-zoo`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "zoo.py"


def load_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("deepc_zoo_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations there
    spec.loader.exec_module(module)
    return module


def test_the_zoo_spans_libraries_and_families() -> None:
    zoo = load_tool()
    names = [m.name for m in zoo.MODELS]
    assert len(names) >= 15 and len(set(names)) == len(names)
    assert {m.source for m in zoo.MODELS} == {"torchvision", "timm", "transformers"}
    families = {m.family.split(":")[0] for m in zoo.MODELS}
    assert {"cnn", "transformer", "hybrid"} <= families
    assert any(m.tokens for m in zoo.MODELS) and any(m.cnn for m in zoo.MODELS)


def test_list_and_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    zoo = load_tool()
    assert zoo.main(["--list", "--cnn"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed and all("cnn" in line for line in listed)
    with pytest.raises(SystemExit):
        zoo.main(["--only", "no_such_model"])

"""Shared fixtures: where the shared models live, and skipping with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEEPC_SHARED", ROOT.parent / "shared"))
MODELS_DIR = SHARED / "models"
SHARED_MODELS = ("mobilenet_v2", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0",
                 "efficientnet_b0", "encoder", "lstm")


def shared_model(name: str) -> Path:
    path = MODELS_DIR / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not present: the shared models live in ../shared/models")
    return path


@pytest.fixture(autouse=True)
def _no_cli_progress_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process CLI runs are not terminals, so runs over 2 s print `deepc: ...` progress
    lines on stderr; on a loaded machine that would put them before the one error line the
    tests read. A test of the progress lines sets the delay itself."""
    import deepc.cli_common

    monkeypatch.setattr(deepc.cli_common, "QUIET_SECONDS", 3600.0)

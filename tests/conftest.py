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

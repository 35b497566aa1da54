"""ONNX opset upgrade: a model older than the oldest opset the converters read, brought up to it.

The library never prints: an upgrade is announced as a `ModelUpgraded` warning, which the
caller (the CLI) records with `warnings.catch_warnings(record=True)` and shows; an upgrade
that onnx's version converter cannot do is a ModelLoadError naming the opsets.
"""

from __future__ import annotations

import warnings

import onnx
from onnx import version_converter

from deepc.errors import ModelLoadError

MIN_OPSET = 7
# The opset models are upgraded to: the first past the legacy broadcast/consumed_inputs
# attributes and one every converter reads.
TARGET_OPSET = 9


class ModelUpgraded(UserWarning):
    """A model was upgraded to a newer opset on import; the message says from which to which."""


def default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return MIN_OPSET


def upgrade(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """The model at an opset deepc reads, and a one-line notice if it had to be upgraded."""
    old = default_opset(model)
    if old >= MIN_OPSET:
        return model, None
    try:
        new = version_converter.convert_version(model, TARGET_OPSET)
    except Exception as exc:  # the converter raises RuntimeError and friends
        raise ModelLoadError(
            f"opset {old} is older than the oldest supported ({MIN_OPSET}) and onnx's version "
            f"converter could not upgrade it to {TARGET_OPSET} ({type(exc).__name__}: "
            f"{str(exc)[:120]}); re-export the model at opset {MIN_OPSET} or newer"
        ) from None
    return new, f"model upgraded from opset {old} to {TARGET_OPSET} with onnx.version_converter"


def upgraded(model: onnx.ModelProto) -> onnx.ModelProto:
    """`upgrade`, with its notice issued as a ModelUpgraded warning for the caller."""
    model, notice = upgrade(model)
    if notice:
        warnings.warn(notice, ModelUpgraded, stacklevel=3)
    return model

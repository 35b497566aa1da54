"""deepc: a deep-learning model compiler — ONNX in, small fast self-contained bundles out."""

from __future__ import annotations

from deepc.errors import DeepcError

__version__ = "0.1.0"

__all__ = ["DeepcError", "__version__"]

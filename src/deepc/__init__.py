"""deepc: a deep-learning model compiler — ONNX in, small fast self-contained bundles out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepc.errors import DeepcError
from deepc.version import __version__

if TYPE_CHECKING:
    import os

    from deepc.runtime.model import Model



def compile(model, target="host", **options):  # type: ignore[no-untyped-def]
    """Compile a model (path or graph IR) for a target; see deepc.compiler.pipeline."""
    from deepc.compiler.pipeline import compile as _compile

    return _compile(model, target, **options)


def load(path: str | os.PathLike[str]) -> Model:
    """Load a compiled bundle to run it: `deepc.load("model.tar").run({"x": array})`."""
    from deepc.runtime.loaders import load as _load

    return _load(path)


__all__ = ["DeepcError", "__version__", "compile", "load"]

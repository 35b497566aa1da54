"""deepc: a deep-learning model compiler — ONNX in, small fast self-contained bundles out."""

from __future__ import annotations

from deepc.errors import DeepcError

__version__ = "0.1.0"



def compile(model, target="host", **options):  # type: ignore[no-untyped-def]
    """Compile a model (path or graph IR) for a target; see deepc.compiler.pipeline."""
    from deepc.compiler.pipeline import compile as _compile

    return _compile(model, target, **options)


__all__ = ["DeepcError", "__version__", "compile"]

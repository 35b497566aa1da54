"""The quantised model set: shared fp32 models -> static QDQ per-channel int8 models, made with
onnxruntime's own quantisation tool and cached under .deepc-cache/quantized.

`python -m tests.e2e.quantized` builds them all and prints each fp32 model beside its int8
one, the list `make bench-int8` times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from deepc.frontends import load
from deepc.runtime.inputs import random_inputs
from tests.conftest import MODELS_DIR, ROOT

QUANTIZED_MODELS = ("mobilenet_v2", "resnet18", "squeezenet1_1", "shufflenet_v2_x1_0",
                    "efficientnet_b0", "encoder")
# The ops the issue folds into integer kernels; other ops stay in float between DQ and Q.
OP_TYPES = ("Conv", "MatMul", "Gemm", "Add")
CALIBRATION_SAMPLES = 4
CACHE = ROOT / ".deepc-cache" / "quantized"


class _SeededReader:
    """onnxruntime's CalibrationDataReader protocol over seeded random inputs (as the tests
    feed the models: normal floats, token ids in range)."""

    def __init__(self, path: Path) -> None:
        graph = load(path)
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(
            [random_inputs(graph, seed=1000 + k) for k in range(CALIBRATION_SAMPLES)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _recipe_key(source: Path) -> str:
    """The cache key: the fp32 model's bytes, the recipe and onnxruntime's version."""
    import onnxruntime

    h = hashlib.sha256(source.read_bytes())
    h.update(repr((OP_TYPES, CALIBRATION_SAMPLES, onnxruntime.__version__)).encode())
    return h.hexdigest()[:16]


def quantized_model(name: str) -> Path:
    """The int8 QDQ (uint8 activations, per-channel int8 weights) form of shared model `name`,
    built on first use."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    source = MODELS_DIR / f"{name}.onnx"
    if not source.exists():
        raise FileNotFoundError(f"{source} not present: the shared models live in ../shared/models")
    out = CACHE / f"{name}.{_recipe_key(source)}.int8.onnx"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.onnx")
    quantize_static(str(source), str(tmp), _SeededReader(source), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=list(OP_TYPES))
    onnx.checker.check_model(str(tmp))
    tmp.replace(out)
    return out


if __name__ == "__main__":
    print(" ".join(f"{MODELS_DIR / m}.onnx {quantized_model(m)}" for m in QUANTIZED_MODELS))

"""Where end-to-end tests get their models: ../shared/models and the onnx package's light models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

LIGHT_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
                "shufflenet", "squeezenet", "vgg19", "zfnet512")


def light_model(name: str) -> Path:
    return LIGHT_DIR / f"light_{name}.onnx"


def light_inputs(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The inputs onnx's backend test runner feeds light models: arange(n)/n, float32."""
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1
                      for d in vi.type.tensor_type.shape.dim)
        n = int(np.prod(shape))
        feeds[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
    return feeds


def light_reference_outputs(name: str) -> list[np.ndarray]:
    from onnx import numpy_helper

    outs = []
    i = 0
    while (path := LIGHT_DIR / f"light_{name}_output_{i}.pb").exists():
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        outs.append(numpy_helper.to_array(tensor))
        i += 1
    return outs

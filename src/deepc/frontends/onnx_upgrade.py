"""ONNX opset upgrade: a model older than the oldest opset the converters read, brought up to it.

The library never prints: an upgrade is announced as a `ModelUpgraded` warning, which the
caller (the CLI) records with `warnings.catch_warnings(record=True)` and shows; an upgrade
that onnx's version converter cannot do is a ModelLoadError naming the opsets.
"""

from __future__ import annotations

import warnings

import onnx
from onnx import numpy_helper, shape_inference, version_converter

from deepc.errors import DeepcNotice, ModelLoadError

MIN_OPSET = 7
# The opset models are upgraded to: the first past the legacy broadcast/consumed_inputs
# attributes and one every converter reads.
TARGET_OPSET = 9


class ModelUpgraded(DeepcNotice):
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
        new = version_converter.convert_version(_channel_slopes(model), TARGET_OPSET)
    except Exception as exc:  # the converter raises RuntimeError and friends
        raise ModelLoadError(
            f"opset {old} is older than the oldest supported ({MIN_OPSET}) and onnx's version "
            f"converter could not upgrade it to {TARGET_OPSET} ({type(exc).__name__}: "
            f"{str(exc)[:120]}); re-export the model at opset {MIN_OPSET} or newer"
        ) from None
    return new, f"model upgraded from opset {old} to {TARGET_OPSET} with onnx.version_converter"


def _channel_slopes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Before opset 7, a PRelu slope of shape [C] applied per channel of x[N, C, ...]; from
    7 it broadcasts numpy-style (along the last axis), and the version converter keeps the
    shape. Such constant slopes are reshaped to [C, 1, ...]."""
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in (*model.graph.input, *shape_inference.infer_shapes(model).graph.value_info)
             if vi.type.tensor_type.HasField("shape")}
    inits = {t.name: t for t in model.graph.initializer}
    slopes = {n.input[1]: ranks.get(n.input[0], 0) for n in model.graph.node
              if n.op_type == "PRelu" and len(n.input) > 1 and n.input[1] in inits}
    reshape = {name: rank for name, rank in slopes.items()
               if rank > 2 and len(inits[name].dims) == 1 and inits[name].dims[0] > 1}
    if not reshape:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for t in out.graph.initializer:
        if t.name in reshape:
            arr = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(arr.reshape(-1, *(1,) * (reshape[t.name] - 2)),
                                               t.name))
    for vi in out.graph.input:  # an initializer listed as an input (IR < 4) too
        if vi.name in reshape:
            dims = vi.type.tensor_type.shape.dim
            dims.extend(onnx.TensorShapeProto.Dimension(dim_value=1)
                        for _ in range(reshape[vi.name] - 2))
    return out


def upgraded(model: onnx.ModelProto) -> onnx.ModelProto:
    """`upgrade`, with its notice issued as a ModelUpgraded warning for the caller."""
    model, notice = upgrade(model)
    if notice:
        warnings.warn(notice, ModelUpgraded, stacklevel=3)
    return model

"""A 2-D windowed op (conv, max_pool) with a column stride -> the same op at column stride 1
and a strided slice of its columns, for byte and int32 kernels on NCHW values: their vector
lanes run along contiguous columns, where strided taps gather into scalar code (resnet18's
3x3/2 stem max_pool on bytes: 1.4 ms -> 0.2 ms; a stride-2 depthwise conv computes twice the
columns at over twice the speed); the computed columns are padded to a multiple of 16."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepc.ops.window import spatial_attrs

WIDE_COLUMNS = 16


def unit_column_stride(attrs: dict[str, Any], kernel: Sequence[int], x_shape: Sequence[int],
                       out_shape: Sequence[int]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the op's attrs at column stride 1, the slice that keeps every stride-th column), or
    None where the op has no column stride. ceil_mode's last window becomes explicit end
    padding (a max_pool reads padding as the minimum, never as a value)."""
    if len(x_shape) != 4:
        return None
    strides, pads, dilations = spatial_attrs(attrs, 2)
    if strides[1] == 1:
        return None
    kh, kw = (dilations[i] * (k - 1) + 1 for i, k in enumerate(kernel))
    (h, w), (ho, wo) = x_shape[2:], out_shape[2:]
    ends = (max(pads[2], (ho - 1) * strides[0] + kh - h - pads[0]),
            max(pads[3], (wo - 1) * strides[1] + kw - w - pads[1]))
    # the stride-1 columns are the vector lanes: a count with few divisors (squeezenet's
    # 109) left the kernel scalar, so padding columns make it a multiple of WIDE_COLUMNS
    columns = w + pads[1] + ends[1] - kw + 1
    ends = (ends[0], ends[1] + -columns % WIDE_COLUMNS)
    unit = {**attrs, "strides": (strides[0], 1), "pads": (*pads[:2], *ends)}
    if "ceil_mode" in attrs:
        unit["ceil_mode"] = 0
    return unit, {"starts": (0,), "ends": ((wo - 1) * strides[1] + 1,), "axes": (3,),
                  "steps": (strides[1],)}

"""Numpy buffers on 64-byte boundaries, as the compiled code's params and workspace need."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

ALIGN = 64


def aligned_empty(nbytes: int, align: int = ALIGN) -> np.ndarray:
    """An uninitialised uint8 array of `nbytes` (at least 1) whose data starts on `align`."""
    size = max(int(nbytes), 1)
    raw = np.empty(size + align, np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset:offset + size]


def aligned_array(shape: Sequence[int], dtype: np.dtype | str) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape` and `dtype` starting on a 64-byte line."""
    dt = np.dtype(dtype)
    count = prod(shape)
    return aligned_empty(count * dt.itemsize)[:count * dt.itemsize].view(dt).reshape(shape)

"""Numpy buffers on 64-byte boundaries, as the compiled code's params and workspace need."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Sequence
from math import prod
from pathlib import Path

import numpy as np

ALIGN = 64
HUGE_PAGE = 2 << 20  # x86-64's and arm64's transparent huge pages (Linux, 4 KiB base pages)


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


def huge_empty(nbytes: int) -> np.ndarray:
    """An uninitialised uint8 array of `nbytes` on 2 MiB boundaries, in anonymous memory the
    kernel is asked to back with transparent huge pages (madvise; Linux only, where THP is
    `madvise` or `always`); an aligned_empty array below one huge page or elsewhere.

    A model's weights streamed once per run cross a 4 KiB page every 64 lines: with 4 KiB
    pages each crossing is a TLB miss (46 MiB of resnet18 weights are 11,000 pages, more
    than the TLB holds), and the hardware prefetchers stop at page boundaries. Huge pages
    remove both (resnet18 at 1 thread, bench-like interleaved runs on an AMD EPYC:
    15.87 -> 15.75 ms CPU time; the lstm 0.934 -> 0.919 ms)."""
    size = max(int(nbytes), 1)
    if size < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return aligned_empty(size)
    span = -(-size // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE  # room to start on a boundary
    area = mmap.mmap(-1, span, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(area, np.uint8)  # keeps `area` mapped while any view lives
    start = (-raw.ctypes.data) % HUGE_PAGE
    with contextlib.suppress(OSError):  # a kernel built without THP: plain pages, aligned
        area.madvise(mmap.MADV_HUGEPAGE, start, span - start)
    return raw[start:start + size]


def read_huge(path: Path, nbytes: int) -> np.ndarray:
    """The first `nbytes` of a file, copied into huge_empty memory."""
    array = huge_empty(nbytes)
    with open(path, "rb") as f:
        if f.readinto(memoryview(array)[:nbytes]) != nbytes:
            raise EOFError(f"{path}: fewer than {nbytes} bytes")
    return array

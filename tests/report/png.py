"""A small PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium's screenshots are) on
zlib and numpy, so the report test needs no imaging library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}  # colour type -> samples per pixel


def read_png(path: Path) -> np.ndarray:
    """The image as an (height, width, channels) uint8 array."""
    data = path.read_bytes()
    assert data[:8] == SIGNATURE, f"{path} is not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in CHANNELS and not interlace, \
                f"{path}: depth {depth}, colour type {colour}, interlace {interlace}"
            channels = CHANNELS[colour]
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = width * channels
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    for y in range(height):
        out[y] = _unfilter(rows[y, 0], rows[y, 1:], out[y - 1] if y else None, channels)
    return out.reshape(height, width, channels)


def _unfilter(kind: int, line: np.ndarray, prev: np.ndarray | None, bpp: int) -> np.ndarray:
    up = prev.astype(np.int32) if prev is not None else np.zeros(line.size, np.int32)
    x = line.astype(np.int32)
    if kind == 0:
        return line
    if kind == 2:
        return ((x + up) & 0xFF).astype(np.uint8)
    if kind == 1:  # Sub: a running sum along the row, per channel
        return (x.reshape(-1, bpp).cumsum(axis=0) & 0xFF).astype(np.uint8).reshape(-1)
    out = np.zeros(line.size, np.int32)
    for i in range(line.size):  # Average and Paeth depend on the pixel to the left
        left = out[i - bpp] if i >= bpp else 0
        corner = up[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (x[i] + (left + up[i]) // 2) & 0xFF
        else:
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            out[i] = (x[i] + pred) & 0xFF
    return out.astype(np.uint8)

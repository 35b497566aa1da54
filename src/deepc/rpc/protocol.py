"""The RPC wire format: frames of a JSON header and raw bytes, and tensors packed into them.

Every message, both ways, is one frame (all integers big-endian):

```
offset  size  field
0       4     magic b"DPRC"
4       2     protocol version (PROTOCOL_VERSION)
6       2     flags, 0
8       4     header length H (at most MAX_HEADER_BYTES)
12      8     payload length P
20      H     header: a UTF-8 JSON object with at least "type"
20+H    P     payload: a bundle's tar bytes, or tensors back to back (see pack_tensors)
```

Tensors travel as `"tensors": [{"name", "dtype", "shape"}, ...]` in the header and their
bytes, little-endian and C-ordered, one after another in the payload; nothing is pickled.
docs/rpc.md lists the messages of a conversation.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.rpc.errors import ERRORS, ProtocolError, RpcError, VersionMismatchError

MAGIC = b"DPRC"
PROTOCOL_VERSION = 1
PREFIX = struct.Struct("!4sHHIQ")
MAX_HEADER_BYTES = 1 << 20
HANG_UP_S, HANG_UP_BYTES = 1.0, 1 << 20  # what is read and dropped after a fatal error
# the dtypes a tensor may have on the wire (numpy names); no object or structured types
WIRE_DTYPES = frozenset({"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                         "uint64", "float16", "float32", "float64"})

Payload = bytes | bytearray | memoryview


class ClosedError(RpcError):
    """The peer closed the connection between two frames (a normal end of a conversation)."""


@dataclass(frozen=True)
class Frame:
    header: dict[str, Any]
    payload: Payload = b""

    @property
    def type(self) -> str:
        return str(self.header.get("type", ""))


def _read_exact(sock: socket.socket, n: int, at_boundary: bool = False) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if k == 0:
            if at_boundary and got == 0:
                raise ClosedError("the peer closed the connection")
            raise ProtocolError(f"truncated frame: the connection closed after {got} of {n}"
                                " bytes")
        got += k
    return buf


class Channel:
    """One end of a connection: sends and receives frames on a (possibly TLS) socket."""

    def __init__(self, sock: socket.socket, peer: str = "peer"):
        self.sock = sock
        self.peer = peer

    def send(self, header: Mapping[str, Any], payload: Payload | Sequence[Payload] = b"") -> None:
        parts = [payload] if isinstance(payload, bytes | bytearray | memoryview) else payload
        views = [memoryview(p).cast("B") for p in parts]
        text = json.dumps(dict(header), separators=(",", ":")).encode()
        size = sum(v.nbytes for v in views)
        self.sock.sendall(PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, len(text), size) + text)
        for view in views:
            self.sock.sendall(view)

    def send_error(self, error: RpcError | str, kind: str | None = None) -> None:
        kind = kind or (error.kind if isinstance(error, RpcError) else "job")
        self.send({"type": "error", "kind": kind, "message": str(error)})

    def hang_up(self, error: RpcError) -> None:
        """Send the error, then close without a reset: unread bytes from the peer, dropped
        at close, would make TCP reset the connection and lose the error frame with it."""
        with contextlib.suppress(OSError):
            self.send_error(error)
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(HANG_UP_S)
            drained = 0
            while drained < HANG_UP_BYTES and (chunk := self.sock.recv(1 << 16)):
                drained += len(chunk)
        self.close()

    def recv_header(self) -> tuple[dict[str, Any], int]:
        """The next frame's header and its payload's length (the payload is still unread)."""
        magic, version, _flags, hlen, plen = PREFIX.unpack(
            _read_exact(self.sock, PREFIX.size, at_boundary=True))
        if magic != MAGIC:
            raise ProtocolError(f"{self.peer} does not speak the deepc RPC protocol (got bytes"
                                f" {bytes(magic)!r}, expected {MAGIC!r})")
        if version != PROTOCOL_VERSION:
            raise VersionMismatchError(
                f"{self.peer} speaks deepc RPC protocol version {version}, this side version"
                f" {PROTOCOL_VERSION} — install the same deepc version on both machines")
        if hlen > MAX_HEADER_BYTES:
            raise ProtocolError(f"frame header of {hlen} bytes is over the"
                                f" {MAX_HEADER_BYTES}-byte limit")
        try:
            header = json.loads(_read_exact(self.sock, hlen).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ProtocolError(f"frame header is not JSON ({e})") from None
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ProtocolError("frame header is not a JSON object with a \"type\"")
        return header, plen

    def recv_payload(self, n: int) -> bytearray:
        return _read_exact(self.sock, n)

    def recv(self, max_payload: int) -> Frame:
        """The next frame, whole; an "error" frame is raised as the error it names."""
        header, plen = self.recv_header()
        if plen > max_payload:
            raise ProtocolError(f"a {header['type']!r} frame of {plen} bytes is over the"
                                f" {max_payload}-byte limit")
        frame = Frame(header, self.recv_payload(plen) if plen else b"")
        if frame.type == "error":
            cls = ERRORS.get(str(header.get("kind")), RpcError)
            raise cls(str(header.get("message", "the peer reported an error")))
        return frame

    def expect(self, kind: str, max_payload: int = 0) -> Frame:
        frame = self.recv(max_payload)
        if frame.type != kind:
            raise ProtocolError(f"expected a {kind!r} frame from {self.peer}, got"
                                f" {frame.type!r}")
        return frame

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def wait_seconds(header: Mapping[str, Any], limit: float) -> float:
    """A request's "wait" (how long it may queue), within [0, limit]; NaN counts as 0."""
    wait = float(header.get("wait", limit))
    return max(0.0, min(wait, limit)) if wait == wait else 0.0


def pack_tensors(arrays: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[memoryview]]:
    """(the header's "tensors" list, the payload parts) for arrays by name."""
    specs, parts = [], []
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype.name not in WIRE_DTYPES:
            raise RpcError(f"tensor {name!r} has dtype {array.dtype}, which cannot travel over"
                           f" RPC ({', '.join(sorted(WIRE_DTYPES))})")
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        if not array.flags.c_contiguous:  # (not ascontiguousarray: it makes scalars 1-d)
            array = array.copy(order="C")
        specs.append({"name": str(name), "dtype": array.dtype.name, "shape": list(array.shape)})
        parts.append(memoryview(array.reshape(-1).view(np.uint8)))
    return specs, parts


def _spec_nbytes(spec: Any, max_tensor_bytes: int) -> tuple[str, np.dtype, tuple[int, ...], int]:
    try:
        name, dtype, shape = str(spec["name"]), str(spec["dtype"]), tuple(spec["shape"])
        if dtype not in WIRE_DTYPES or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"{dtype}{list(shape)}")
    except (KeyError, TypeError, ValueError) as e:
        raise ProtocolError(f"bad tensor description {spec!r} ({e})") from None
    dt = np.dtype(dtype).newbyteorder("<")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize if shape else dt.itemsize
    if nbytes > max_tensor_bytes:
        raise ProtocolError(f"tensor {name!r} of {nbytes} bytes is over the"
                            f" {max_tensor_bytes}-byte tensor limit")
    return name, dt, shape, nbytes


def unpack_tensors(specs: Any, payload: Payload, max_tensor_bytes: int) -> dict[str, np.ndarray]:
    """Arrays by name from a header's "tensors" list and the payload; checks every size."""
    if not isinstance(specs, list):
        raise ProtocolError("\"tensors\" is not a list")
    out: dict[str, np.ndarray] = {}
    pos = 0
    for spec in specs:
        name, dt, shape, nbytes = _spec_nbytes(spec, max_tensor_bytes)
        if pos + nbytes > len(payload):
            raise ProtocolError(f"payload too short for tensor {name!r}")
        array = np.frombuffer(payload, dtype=dt, count=nbytes // dt.itemsize, offset=pos)
        out[name] = array.reshape(shape).astype(dt.newbyteorder("="))
        pos += nbytes
    if pos != len(payload):
        raise ProtocolError(f"payload holds {len(payload) - pos} bytes past its tensors")
    return out

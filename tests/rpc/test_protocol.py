"""Frames, tensors and the key handshake over a socket pair: no server, no network."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from deepc.rpc.auth import client_handshake, read_key, server_handshake, write_key
from deepc.rpc.errors import AuthError, ProtocolError, VersionMismatchError
from deepc.rpc.protocol import (
    MAGIC,
    PREFIX,
    PROTOCOL_VERSION,
    WIRE_DTYPES,
    Channel,
    ClosedError,
    pack_tensors,
    unpack_tensors,
    wait_seconds,
)

KEY = b"k" * 32


@pytest.fixture
def pair() -> Iterator[tuple[Channel, Channel]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield Channel(a, "a"), Channel(b, "b")
    a.close()
    b.close()


def test_frame_round_trip(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.send({"type": "x", "n": 1}, [b"ab", memoryview(b"cd")])
    frame = b.recv(4)
    assert frame.header == {"type": "x", "n": 1} and bytes(frame.payload) == b"abcd"


@pytest.mark.parametrize("dtype", sorted(WIRE_DTYPES))
def test_tensors_round_trip(dtype: str) -> None:
    rng = np.random.default_rng(0)
    arrays = {"a": (rng.standard_normal((2, 3, 4)) * 10).astype(dtype),
              "scalar": np.asarray(3).astype(dtype), "empty": np.zeros((0, 5), dtype)}
    specs, parts = pack_tensors(arrays)
    back = unpack_tensors(specs, b"".join(bytes(p) for p in parts), 1 << 20)
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array)


def test_big_endian_arrays_travel_little_endian() -> None:
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    specs, parts = pack_tensors({"x": array})
    assert bytes(parts[0]) == np.arange(6, dtype="<f4").tobytes()
    np.testing.assert_array_equal(unpack_tensors(specs, bytes(parts[0]), 1 << 10)["x"], array)


@pytest.mark.parametrize(("specs", "payload", "match"), [
    ([{"name": "x", "dtype": "object", "shape": [1]}], b"\0" * 8, "bad tensor"),
    ([{"name": "x", "dtype": "float32", "shape": [-1]}], b"", "bad tensor"),
    ([{"name": "x", "dtype": "float32", "shape": [4]}], b"\0" * 8, "too short"),
    ([{"name": "x", "dtype": "float32", "shape": [1]}], b"\0" * 8, "past its tensors"),
    ([{"name": "x", "dtype": "float64", "shape": [1024]}], b"", "tensor limit"),
    ("nope", b"", "not a list"),
])
def test_bad_tensors_are_refused(specs: object, payload: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        unpack_tensors(specs, payload, 4096)


def test_objects_cannot_be_sent() -> None:
    with pytest.raises(Exception, match="cannot travel"):
        pack_tensors({"x": np.array([object()])})


@pytest.mark.parametrize(("raw", "error", "match"), [
    (b"HTTP/1.1 200 OK\r\n\r\n" * 2, ProtocolError, "does not speak"),
    (PREFIX.pack(MAGIC, PROTOCOL_VERSION + 1, 0, 2, 0) + b"{}", VersionMismatchError,
     f"version {PROTOCOL_VERSION + 1}"),
    (PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, 1 << 30, 0), ProtocolError, "header of"),
    (PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, 2, 0) + b"[]", ProtocolError, "\"type\""),
    (PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, 12, 100) + b'{"type":"x"}', ProtocolError,
     "over the 10-byte limit"),
    (PREFIX.pack(MAGIC, PROTOCOL_VERSION, 0, 12, 10) + b'{"type":"x"}' + b"abc",
     ProtocolError, "truncated"),
])
def test_bad_frames(pair: tuple[Channel, Channel], raw: bytes, error: type[Exception],
                    match: str) -> None:
    a, b = pair
    a.sock.sendall(raw)
    a.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(error, match=match):
        b.recv(10)


def test_close_between_frames_is_not_an_error_of_the_frame(pair: tuple[Channel, Channel]
                                                           ) -> None:
    a, b = pair
    a.sock.shutdown(socket.SHUT_WR)
    with pytest.raises(ClosedError):
        b.recv(0)


def handshake_with(server_key: bytes, client_key: bytes) -> tuple[object, object]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    results: dict[str, object] = {}

    def serve() -> None:
        try:
            server_handshake(Channel(a, "client"), server_key, {"target": "t"})
            results["server"] = "ok"
        except Exception as e:
            results["server"] = e

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        results["client"] = client_handshake(Channel(b, "server"), client_key)
    except Exception as e:
        results["client"] = e
    thread.join(5)
    a.close()
    b.close()
    return results["server"], results["client"]


def test_handshake_with_the_same_key() -> None:
    server, hello = handshake_with(KEY, KEY)
    assert server == "ok" and hello["target"] == "t"  # type: ignore[index]


def test_handshake_with_another_key_fails_on_both_ends() -> None:
    server, client = handshake_with(KEY, b"x" * 32)
    assert isinstance(server, AuthError) and isinstance(client, AuthError)
    assert "refused the key" in str(client)


def test_the_key_never_crosses_the_wire() -> None:
    a, b = socket.socketpair()
    seen = bytearray()

    def serve() -> None:
        channel = Channel(a, "client")
        original = channel.sock.recv_into

        def spy(buf: memoryview, n: int = 0) -> int:
            k = original(buf, n)
            seen.extend(buf[:k])
            return k

        channel.sock = type("Spy", (), {"recv_into": staticmethod(spy),
                                        "sendall": a.sendall})()  # type: ignore[assignment]
        server_handshake(channel, KEY, {})

    thread = threading.Thread(target=serve)
    thread.start()
    client_handshake(Channel(b, "server"), KEY)
    thread.join(5)
    a.close()
    b.close()
    assert seen and KEY not in seen and KEY.hex().encode() not in seen


def test_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_key(tmp_path / "key")
    assert path.stat().st_mode & 0o077 == 0 and len(read_key(path)) == 64
    with pytest.raises(FileExistsError):
        write_key(path)
    (tmp_path / "short").write_text("abc\n")
    with pytest.raises(Exception, match="at least 16"):
        read_key(tmp_path / "short")
    with pytest.raises(Exception, match="cannot read the key file"):
        read_key(tmp_path / "missing")


@pytest.mark.parametrize(("header", "expected"), [
    ({}, 60.0), ({"wait": 5}, 5.0), ({"wait": 1e9}, 60.0), ({"wait": -3}, 0.0),
    ({"wait": float("nan")}, 0.0),
])
def test_wait_is_clamped(header: dict[str, float], expected: float) -> None:
    assert wait_seconds(header, 60.0) == expected

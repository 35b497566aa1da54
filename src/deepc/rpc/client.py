"""The RPC client: a bundle's outputs and timings from a remote board, as if it ran here.

`Client("pi:9090", key).run("model.tar", {"x": x})` uploads the bundle once (the server keeps
it by sha256), sends the inputs and returns the outputs; `.time(...)` returns the board's own
timing of each run. `deepc run --remote`, `deepc bench --remote` and the tuner use it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepc.rpc.auth import client_handshake
from deepc.rpc.errors import ProtocolError, RpcError, UnreachableError
from deepc.rpc.protocol import Channel, ClosedError, pack_tensors, unpack_tensors

CONNECT_TIMEOUT_S = 10.0
SLACK_S = 30.0  # beyond the server's own queue and job time-outs, before giving up on it


def parse_address(text: str, default_port: int = 9090) -> tuple[str, int]:
    """HOST:PORT (or [IPv6]:PORT, or HOST alone) into (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RpcError(f"bad address {text!r}: expected HOST:PORT, e.g. 192.168.1.20:9090")
    return host, int(port)


@dataclass(frozen=True)
class RemoteTimes:
    """Seconds of each timed run on the board; `emulated` when the board ran it under an
    emulator (`emulator`), whose times say nothing of the device's speed."""

    seconds: tuple[float, ...]
    emulated: bool = False
    emulator: str | None = None
    target: str | None = None
    threads: int = 0  # the threads the board ran with


def connect(address: str | tuple[str, int], tls: ssl.SSLContext | None = None,
            timeout: float = CONNECT_TIMEOUT_S) -> Channel:
    """A connected (and, with `tls`, encrypted) channel; UnreachableError when nobody answers."""
    host, port = parse_address(address) if isinstance(address, str) else address
    where = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise UnreachableError(f"cannot reach {where}: {reason} — is `deepc rpc serve` running"
                               " there, and the port open?") from None
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, OSError) as e:
            sock.close()
            raise UnreachableError(f"TLS with {where} failed: {e} — is the server started with"
                                   " --tls-cert, and --tls-ca its certificate?") from None
    return Channel(sock, f"server {where}")


def handshake(channel: Channel, key: bytes) -> dict[str, Any]:
    """Authenticate on a fresh channel; every way it can fail becomes one RpcError."""
    try:
        return client_handshake(channel, key)
    except ClosedError:
        channel.close()
        raise RpcError(f"{channel.peer} closed the connection before the handshake ended —"
                       " it may be full, or not a deepc server") from None
    except TimeoutError:
        channel.close()
        raise UnreachableError(f"{channel.peer} did not answer within"
                               f" {channel.sock.gettimeout():g} s — is it a deepc server (TLS"
                               " servers need --tls-ca)?") from None
    except OSError as e:
        channel.close()
        raise UnreachableError(f"lost the connection to {channel.peer}: {e}") from None
    except RpcError:
        channel.close()
        raise


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Client:
    """One authenticated connection to a board; use it as a context manager."""

    def __init__(self, address: str | tuple[str, int], key: bytes, *,
                 tls: ssl.SSLContext | None = None, timeout: float = CONNECT_TIMEOUT_S,
                 wait: float | None = None):
        self.channel = connect(address, tls, timeout)
        self.info = handshake(self.channel, key)
        limits = self.info.get("limits", {})
        self.wait = wait
        queue = float(limits.get("queue_timeout_s", 0)) if wait is None else wait
        self._job_timeout = queue + float(limits.get("job_timeout_s", 0)) + SLACK_S
        self._max_upload = int(limits.get("max_upload_bytes", 1 << 62))
        self._hashes: dict[tuple[str, int, int], str] = {}

    @property
    def target(self) -> str | None:
        """The target name the board serves (as the tracker knows it)."""
        return self.info.get("target")

    def _call(self, header: dict[str, Any], payload: Any = b"", reply: str = "",
              max_payload: int = 0) -> Any:
        if self.wait is not None:
            header = {**header, "wait": self.wait}
        try:
            self.channel.sock.settimeout(self._job_timeout)
            self.channel.send(header, payload)
            return self.channel.expect(reply, max_payload)
        except ClosedError:
            raise RpcError(f"{self.channel.peer} closed the connection") from None
        except TimeoutError:
            raise RpcError(f"{self.channel.peer} sent no answer within {self._job_timeout:g}"
                           " s") from None
        except OSError as e:
            raise RpcError(f"lost the connection to {self.channel.peer}: {e}") from None

    def upload(self, bundle: str | os.PathLike[str] | Any) -> str:
        """Send the bundle unless the board has it already; returns its sha256."""
        path = Path(getattr(bundle, "source", bundle))
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = _file_sha256(path)
        sha = self._hashes[key]
        if self._call({"type": "has", "sha256": sha}, reply="has").header.get("present"):
            return sha
        if stat.st_size > self._max_upload:
            raise RpcError(f"{path} is {stat.st_size} bytes, over the server's"
                           f" {self._max_upload}-byte upload limit (--max-upload-mib)")
        self._call({"type": "upload", "sha256": sha}, memoryview(path.read_bytes()), "uploaded")
        return sha

    def run(self, bundle: Any, inputs: Mapping[str, Any], threads: int = 0
            ) -> dict[str, np.ndarray]:
        """The model's outputs by name for `inputs` by name, computed on the board."""
        sha = self.upload(bundle)
        specs, parts = pack_tensors(inputs)
        frame = self._call({"type": "run", "sha256": sha, "tensors": specs, "threads": threads},
                           parts, "result", max_payload=1 << 62)
        try:
            return unpack_tensors(frame.header.get("tensors"), frame.payload, 1 << 62)
        except ProtocolError as e:
            raise RpcError(f"{self.channel.peer} sent malformed outputs: {e}") from None

    def time(self, bundle: Any, inputs: Mapping[str, Any], runs: int = 10, warmup: int = 1,
             threads: int = 0) -> RemoteTimes:
        """The board's timing of `runs` runs after `warmup` untimed ones."""
        sha = self.upload(bundle)
        specs, parts = pack_tensors(inputs)
        header = self._call({"type": "time", "sha256": sha, "tensors": specs, "runs": runs,
                             "warmup": warmup, "threads": threads}, parts, "times").header
        return RemoteTimes(tuple(float(s) for s in header.get("seconds", [])),
                           bool(header.get("emulated")), header.get("emulator"),
                           header.get("target"), int(header.get("threads", 0)))

    def close(self) -> None:
        try:
            self.channel.sock.settimeout(1.0)
            self.channel.send({"type": "bye"})
        except OSError:
            pass
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

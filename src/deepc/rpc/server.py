"""`deepc rpc serve`: a board that takes bundles over the network and runs and times them.

One thread per connection; each job runs in a worker subprocess (jobs.py), one at a time,
the others queued. A connection that breaks the protocol is answered with an error frame
and closed; the server keeps serving everyone else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepc.rpc.errors import ProtocolError, RpcError
from deepc.rpc.jobs import JobQueue, JobRunner
from deepc.rpc.listener import Listener
from deepc.rpc.protocol import (
    PROTOCOL_VERSION,
    Channel,
    ClosedError,
    pack_tensors,
    unpack_tensors,
    wait_seconds,
)
from deepc.rpc.tracker import register
from deepc.version import __version__

SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_RUNS = 100_000


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 1 << 30
    max_tensor_bytes: int = 256 << 20
    job_timeout_s: float = 600.0
    idle_timeout_s: float = 120.0
    queue_length: int = 32
    max_cache_bytes: int = 8 << 30  # bundles kept; the least recently used go first
    queue_timeout_s: float = 1800.0
    max_connections: int = 64


@dataclass
class ServerConfig:
    key: bytes
    cache_dir: Path
    host: str = "127.0.0.1"
    port: int = 9090
    emulator: bool = False
    target: str = "host"  # the name clients and the tracker ask for
    limits: Limits = field(default_factory=Limits)
    tls: ssl.SSLContext | None = None
    lifetime_s: float | None = None  # stop on its own after this long (tests, one-off boards)
    tracker: str | None = None  # HOST:PORT of a tracker to register with
    advertise: str | None = None  # the host name the tracker gives clients (default: our IP)
    tracker_tls: ssl.SSLContext | None = None  # a client context, when the tracker has TLS


class Server:
    """Bound on construction (port 0 picks a free one: see `address`); `serve()` blocks."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.limits = config.limits
        self.jobs = JobRunner(Path(config.cache_dir), self.limits.job_timeout_s, config.emulator)
        self.queue = JobQueue(self.limits.queue_length)
        self.listener = Listener(config.host, config.port, config.key, tls=config.tls,
                                 idle_timeout_s=self.limits.idle_timeout_s,
                                 lifetime_s=config.lifetime_s,
                                 max_connections=self.limits.max_connections)
        self.address = self.listener.address

    def info(self) -> dict[str, Any]:
        """What the welcome frame tells an authenticated client about this board."""
        lim = self.limits
        return {"server": f"deepc {__version__}", "protocol": PROTOCOL_VERSION,
                "target": self.config.target, "emulator": self.config.emulator,
                "limits": {"max_upload_bytes": lim.max_upload_bytes,
                           "max_tensor_bytes": lim.max_tensor_bytes,
                           "job_timeout_s": lim.job_timeout_s,
                           "queue_timeout_s": lim.queue_timeout_s}}

    def serve(self) -> None:
        if self.config.tracker:
            threading.Thread(target=register, daemon=True, args=(
                self.config.tracker, self.config.key, self.config.target, self.address[1],
                self.listener.stopped, self.config.advertise, self.config.tracker_tls)).start()
        self.listener.serve(self.info(), self._conversation)

    def stop(self) -> None:
        self.listener.stop()

    def _conversation(self, channel: Channel) -> None:
        while not self.listener.stopped.is_set() and self._request(channel):
            pass

    def _request(self, channel: Channel) -> bool:
        """Serve one request; False once the client says goodbye or closes."""
        try:
            header, size = channel.recv_header()
        except ClosedError:
            return False
        kind = header["type"]
        handlers = {"has": self._has, "upload": self._upload, "run": self._run,
                    "time": self._run}
        if kind == "bye":
            return False
        if kind not in handlers:
            raise ProtocolError(f"unknown request {kind!r}")
        limit = self.limits.max_upload_bytes
        if size > limit:
            raise ProtocolError(f"the {kind!r} request's {size} bytes are over the server's"
                                f" {limit}-byte upload limit")
        try:
            handlers[kind](channel, header, size)
        except ProtocolError:
            raise
        except RpcError as e:  # the job failed, the board was busy: the connection goes on
            channel.send_error(e)
        return True

    def _sha(self, header: dict[str, Any]) -> str:
        sha = str(header.get("sha256", ""))
        if not SHA256.match(sha):
            raise ProtocolError("\"sha256\" is not 64 lowercase hex digits")
        return sha

    def _has(self, channel: Channel, header: dict[str, Any], size: int) -> None:
        channel.recv_payload(size)
        channel.send({"type": "has", "present": self.jobs.tar(self._sha(header)).is_file()})

    def _wait(self, header: dict[str, Any]) -> float:
        return wait_seconds(header, self.limits.queue_timeout_s)

    def _upload(self, channel: Channel, header: dict[str, Any], size: int) -> None:
        """Receive a bundle into incoming/, keep it under tars/ only if a job loads it."""
        claimed = self._sha(header)
        fd, tmp = self._incoming()
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f:
                left = size
                while left:
                    chunk = channel.recv_payload(min(left, 1 << 20))
                    digest.update(chunk)
                    f.write(chunk)
                    left -= len(chunk)
            sha = digest.hexdigest()
            if sha != claimed:
                raise ProtocolError(f"the upload's sha256 is {sha}, not the {claimed} announced")
            with self.queue.slot(self._wait(header)):
                os.replace(tmp, self.jobs.tar(sha))
                try:
                    result = self.jobs.run("check", sha)
                except RpcError:
                    self.jobs.tar(sha).unlink(missing_ok=True)
                    raise
                self.jobs.evict(self.limits.max_cache_bytes, keep=sha)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        channel.send({"type": "uploaded", "sha256": sha, **result.header})

    def _incoming(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.jobs.cache / "incoming", suffix=".tar")

    def _run(self, channel: Channel, header: dict[str, Any], size: int) -> None:
        feeds = unpack_tensors(header.get("tensors", []), channel.recv_payload(size),
                               self.limits.max_tensor_bytes)
        sha = self._sha(header)
        if not self.jobs.tar(sha).is_file():
            raise RpcError(f"this server has no bundle {sha[:12]}…: upload it first")
        options: dict[str, Any] = {"threads": max(0, min(int(header.get("threads", 0)), 4096))}
        if header["type"] == "time":
            options["runs"] = max(1, min(int(header.get("runs", 10)), MAX_RUNS))
            options["warmup"] = max(0, min(int(header.get("warmup", 1)), MAX_RUNS))
        with self.queue.slot(self._wait(header)):
            result = self.jobs.run(header["type"], sha, feeds, **options)
        if header["type"] == "time":
            channel.send({"type": "times", **result.header})
            return
        specs, parts = pack_tensors(result.outputs)
        channel.send({"type": "result", **result.header, "tensors": specs}, parts)

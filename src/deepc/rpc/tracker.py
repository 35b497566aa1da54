"""`deepc rpc tracker`: pools boards by target and leases a free one to each client in turn.

A board (`deepc rpc serve --tracker HOST:PORT --target rpi4`) keeps one connection open to
the tracker: "register", then a "ping" every PING_S. A client asks with "request" (a target
and how long it will wait), gets "board" (the address of a free one) when its turn comes,
and holds that board until it sends "release" or closes the connection. All connections
authenticate with the same shared key as the boards.
"""

from __future__ import annotations

import contextlib
import itertools
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from deepc.rpc.client import Client, connect, handshake
from deepc.rpc.errors import BusyError, ProtocolError, RpcError
from deepc.rpc.listener import Listener
from deepc.rpc.protocol import Channel, wait_seconds

PING_S = 10.0
BOARD_SILENCE_S = 3.5 * PING_S  # a board silent this long is dropped
RETRY_S = 2.0


@dataclass(eq=False)
class Board:
    target: str
    host: str
    port: int
    busy: bool = False


@dataclass
class _Pool:
    """Boards of one target and the clients waiting for them, first come first served."""

    boards: list[Board] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)


class Tracker:
    """Bound on construction (`address`); `serve()` blocks until `stop()` or the lifetime."""

    def __init__(self, key: bytes, host: str = "127.0.0.1", port: int = 9190,
                 tls: ssl.SSLContext | None = None, lifetime_s: float | None = None,
                 queue_timeout_s: float = 1800.0, idle_timeout_s: float = 120.0):
        self.queue_timeout_s, self.idle_timeout_s = queue_timeout_s, idle_timeout_s
        self.listener = Listener(host, port, key, tls=tls, idle_timeout_s=idle_timeout_s,
                                 lifetime_s=lifetime_s)
        self.address = self.listener.address
        self._pools: dict[str, _Pool] = {}
        self._cond = threading.Condition()
        self._tickets = itertools.count()

    def boards(self) -> dict[str, list[tuple[str, int, bool]]]:
        """target -> [(host, port, busy)] of the registered boards."""
        with self._cond:
            return {t: [(b.host, b.port, b.busy) for b in p.boards]
                    for t, p in self._pools.items() if p.boards}

    def serve(self) -> None:
        self.listener.serve({"server": "deepc tracker"}, self._conversation)
        self.stop()

    def stop(self) -> None:
        self.listener.stop()
        with self._cond:
            self._cond.notify_all()

    def _conversation(self, channel: Channel) -> None:
        header, _ = channel.recv_header()
        if header["type"] == "register":
            self._board(channel, header, channel.sock.getpeername()[0])
        elif header["type"] == "request":
            self._client(channel, header)
        else:
            raise ProtocolError(f"unknown tracker request {header['type']!r}")

    def _board(self, channel: Channel, header: dict[str, Any], peer_host: str) -> None:
        """Keep the board in its pool while its registration connection lives."""
        board = Board(str(header.get("target") or "host"), str(header.get("host") or peer_host),
                      int(header["port"]))
        channel.send({"type": "registered"})
        channel.sock.settimeout(BOARD_SILENCE_S)
        with self._cond:
            self._pools.setdefault(board.target, _Pool()).boards.append(board)
            self._cond.notify_all()
        try:
            while not self.listener.stopped.is_set():
                header, _ = channel.recv_header()  # pings; anything else ends it too
                if header["type"] != "ping":
                    break
        finally:
            with self._cond:
                self._pools[board.target].boards.remove(board)
                self._cond.notify_all()

    def _client(self, channel: Channel, header: dict[str, Any]) -> None:
        """Lease a board per "request" until the client goes away; "release" or the next
        request ends a lease."""
        while header["type"] == "request":
            target = str(header.get("target") or "host")
            wait = wait_seconds(header, self.queue_timeout_s)
            board = self._lease(target, wait)
            try:
                channel.send({"type": "board", "target": target, "host": board.host,
                              "port": board.port})
                channel.sock.settimeout(None)  # a lease lasts as long as the client's job
                header, _ = channel.recv_header()
            finally:
                with self._cond:
                    board.busy = False
                    self._cond.notify_all()
            if header["type"] == "release":
                channel.sock.settimeout(self.idle_timeout_s)
                header, _ = channel.recv_header()

    def _lease(self, target: str, wait: float) -> Board:
        ticket = next(self._tickets)
        deadline = time.monotonic() + wait
        with self._cond:
            pool = self._pools.setdefault(target, _Pool())
            if not pool.boards:
                known = ", ".join(sorted(t for t, p in self._pools.items() if p.boards))
                raise RpcError(f"no board of target {target!r} is registered with the tracker"
                               f" (boards: {known or 'none'})")
            pool.queue.append(ticket)
            try:
                while True:
                    free = [b for b in pool.boards if not b.busy]
                    if pool.queue[0] == ticket and free:
                        free[0].busy = True
                        return free[0]
                    left = deadline - time.monotonic()
                    if left <= 0 or self.listener.stopped.is_set():
                        raise BusyError(f"every {target} board stayed busy for {wait:g} s —"
                                        " try again later, or add boards")
                    self._cond.wait(left)
            finally:
                pool.queue.remove(ticket)
                self._cond.notify_all()


def register(tracker: str | tuple[str, int], key: bytes, target: str, port: int,
             stop: threading.Event, host: str | None = None,
             tls: ssl.SSLContext | None = None) -> None:
    """Keep a board registered with the tracker until `stop` (reconnecting after failures)."""
    while not stop.is_set():
        channel = None
        try:
            channel = connect(tracker, tls)
            handshake(channel, key)
            channel.send({"type": "register", "target": target, "port": port,
                          "host": host or ""})
            channel.expect("registered")
            while not stop.wait(PING_S):
                channel.send({"type": "ping"})
        except (RpcError, OSError):
            pass
        finally:
            if channel is not None:
                channel.close()
        stop.wait(RETRY_S)


@contextlib.contextmanager
def leased_client(tracker: str | tuple[str, int], key: bytes, target: str, *,
                  tls: ssl.SSLContext | None = None, wait: float | None = None
                  ) -> Iterator[Client]:
    """A Client on a free board of `target` that the tracker leases until the block ends."""
    channel = connect(tracker, tls)
    try:
        handshake(channel, key)
        request: dict[str, Any] = {"type": "request", "target": target}
        if wait is not None:
            request["wait"] = wait
        channel.sock.settimeout(None if wait is None else wait + 30.0)
        channel.send(request)
        board = channel.expect("board").header
        with Client((str(board["host"]), int(board["port"])), key, tls=tls) as client:
            yield client
        with contextlib.suppress(OSError):
            channel.send({"type": "release"})
    finally:
        channel.close()

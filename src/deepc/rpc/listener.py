"""Accepting connections for a server or a tracker: each one authenticated, in its own thread.

A connection that breaks the protocol is answered with an error frame and closed; one that
goes quiet past the idle time-out is closed; neither touches the others.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from deepc.rpc.auth import server_handshake
from deepc.rpc.errors import AuthError, ProtocolError, RpcError
from deepc.rpc.protocol import Channel, ClosedError

Handler = Callable[[Channel], None]
POLL_S = 0.2  # how often the accept loop looks at stop() and the lifetime


class Listener:
    """Bound on construction (port 0 picks a free one: see `address`); `serve()` blocks
    until `stop()` or, with `lifetime_s`, until that many seconds have passed."""

    def __init__(self, host: str, port: int, key: bytes, *, tls: ssl.SSLContext | None = None,
                 idle_timeout_s: float = 120.0, lifetime_s: float | None = None,
                 max_connections: int = 64):
        self.key, self.tls = key, tls
        self.idle_timeout_s, self.lifetime_s = idle_timeout_s, lifetime_s
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(POLL_S)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.stopped = threading.Event()
        self._slots = threading.BoundedSemaphore(max_connections)

    def serve(self, info: dict[str, Any], handle: Handler) -> None:
        """Authenticate each client (telling it `info`), then `handle` its channel."""
        deadline = time.monotonic() + self.lifetime_s if self.lifetime_s else None
        with self._sock:
            while not self.stopped.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    sock, addr = self._sock.accept()
                except TimeoutError:
                    continue
                if not self._slots.acquire(blocking=False):
                    sock.close()  # too many at once: the client sees the connection drop
                    continue
                threading.Thread(target=self._connection, args=(sock, addr, info, handle),
                                 daemon=True).start()
        self.stopped.set()

    def stop(self) -> None:
        self.stopped.set()

    def _connection(self, sock: socket.socket, addr: Any, info: dict[str, Any],
                    handle: Handler) -> None:
        channel = Channel(sock, f"client {addr[0]}:{addr[1]}")
        try:
            sock.settimeout(self.idle_timeout_s)
            if self.tls is not None:
                channel.sock = self.tls.wrap_socket(sock, server_side=True)
            server_handshake(channel, self.key, info)
            handle(channel)
        except (ClosedError, AuthError, OSError, ssl.SSLError):
            pass  # the client went away, had the wrong key (it was told), or stayed idle
        except RpcError as e:  # garbage, a truncated or oversized frame: say so, hang up
            channel.hang_up(e)
        except (KeyError, TypeError, ValueError) as e:  # a header field of the wrong kind
            channel.hang_up(ProtocolError(f"malformed request ({type(e).__name__}: {e})"))
        finally:
            channel.close()
            self._slots.release()

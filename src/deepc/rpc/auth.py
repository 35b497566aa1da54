"""Shared-key authentication: a key file into bytes, and the HMAC challenge-response.

The server opens with a random nonce; the client answers with its own nonce and
HMAC-SHA256(key, "client" | server nonce | client nonce); the server checks it with
`hmac.compare_digest` and proves it holds the key too with the "server" MAC. The key never
crosses the wire, and a recorded exchange cannot be replayed (fresh nonces each time).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from deepc.errors import DeepcError
from deepc.rpc.errors import AuthError, ProtocolError
from deepc.rpc.protocol import Channel

NONCE_BYTES = 32


def read_key(path: str | os.PathLike[str]) -> bytes:
    """The key in a key file (surrounding whitespace dropped); at least 16 bytes."""
    file = Path(path)
    try:
        key = file.read_bytes().strip()
    except OSError as e:
        raise DeepcError(f"cannot read the key file {file}: {e.strerror} — create one with"
                         " `deepc rpc keygen KEY`") from None
    if len(key) < 16:
        raise DeepcError(f"the key file {file} holds {len(key)} bytes; a key needs at least 16"
                         " — create one with `deepc rpc keygen KEY`")
    return key


def write_key(path: str | os.PathLike[str]) -> Path:
    """A new random key (64 hex digits), readable by its owner only."""
    file = Path(path)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return file


def _mac(key: bytes, role: bytes, server_nonce: bytes, client_nonce: bytes) -> str:
    return hmac.new(key, b"deepc-rpc " + role + server_nonce + client_nonce,
                    hashlib.sha256).hexdigest()


def _nonce(header: dict[str, Any], field: str) -> bytes:
    try:
        value = bytes.fromhex(str(header[field]))
    except (KeyError, ValueError):
        value = b""
    if len(value) != NONCE_BYTES:
        raise ProtocolError(f"the handshake's {field} is not {NONCE_BYTES} hex-encoded bytes")
    return value


def server_handshake(channel: Channel, key: bytes, info: dict[str, Any]) -> None:
    """Challenge the client; raises AuthError (after telling it so) unless it holds the key.
    `info` (target, limits, version) goes to authenticated clients only, in "welcome"."""
    server_nonce = secrets.token_bytes(NONCE_BYTES)
    channel.send({"type": "hello", "nonce": server_nonce.hex()})
    header = channel.expect("auth").header
    client_nonce = _nonce(header, "nonce")
    want = _mac(key, b"client", server_nonce, client_nonce)
    if not hmac.compare_digest(want, str(header.get("mac", ""))):
        error = AuthError("the server refused the key: the client's and the server's key"
                          " files differ — copy the server's key file to the client")
        channel.send_error(error)
        raise error
    channel.send({"type": "welcome", **info,
                  "mac": _mac(key, b"server", server_nonce, client_nonce)})


def client_handshake(channel: Channel, key: bytes) -> dict[str, Any]:
    """Answer the server's challenge and check its proof; returns its "welcome" header."""
    hello = channel.expect("hello").header
    server_nonce = _nonce(hello, "nonce")
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    channel.send({"type": "auth", "nonce": client_nonce.hex(),
                  "mac": _mac(key, b"client", server_nonce, client_nonce)})
    welcome = channel.expect("welcome").header  # the server's AuthError, if it refuses
    if not hmac.compare_digest(_mac(key, b"server", server_nonce, client_nonce),
                               str(welcome.get("mac", ""))):
        raise AuthError(f"{channel.peer} could not prove it holds the key — it is not the"
                        " server you meant, or its key file differs")
    return welcome


def server_tls(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise DeepcError(f"cannot load the TLS certificate {cert} / key {key}: {e}") from None
    return context


def client_tls(ca: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Verifies the server against `ca` (its self-signed certificate, say), else system CAs."""
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as e:
        raise DeepcError(f"cannot load the TLS CA file {ca}: {e}") from None

"""The errors an RPC client or server reports: each a DeepcError with its own exit code."""

from __future__ import annotations

from deepc.errors import DeepcError


class RpcError(DeepcError):
    """The server refused a request or the conversation broke off (the message says why)."""

    exit_code = 4
    kind = "rpc"


class UnreachableError(RpcError):
    """No server answers at the address (refused, no route, name unknown, TLS failed)."""

    kind = "unreachable"


class AuthError(RpcError):
    """The client's and the server's keys differ (or a peer cannot prove the key)."""

    exit_code = 5
    kind = "auth"


class VersionMismatchError(RpcError):
    """The two ends speak different protocol versions."""

    exit_code = 6
    kind = "version"


class BusyError(RpcError):
    """The board's queue is full, or the job waited in it longer than allowed."""

    exit_code = 75  # EX_TEMPFAIL: try again later
    kind = "busy"


class JobTimeoutError(RpcError):
    """The job ran past the server's per-job time-out and was killed."""

    exit_code = 75
    kind = "timeout"


class RemoteJobError(RpcError):
    """The job failed on the server (a bad bundle, a crash in the runner)."""

    exit_code = 1
    kind = "job"


class ProtocolError(RpcError):
    """A frame broke the protocol: garbage, truncated, too large, or a malformed header."""

    kind = "protocol"


ERRORS: dict[str, type[RpcError]] = {cls.kind: cls for cls in (
    RpcError, UnreachableError, AuthError, VersionMismatchError, BusyError, JobTimeoutError,
    RemoteJobError, ProtocolError)}

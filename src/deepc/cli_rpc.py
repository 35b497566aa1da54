"""`deepc rpc serve|tracker|keygen`, and the --remote/--tracker options of `run` and `bench`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deepc.cli_common import console, handle_errors

KEY_HELP = "The shared key file (`deepc rpc keygen KEY` makes one)."
REMOTE_OPTIONS = [
    click.option("--remote", metavar="HOST:PORT", default=None,
                 help="Run on the board that `deepc rpc serve` serves there."),
    click.option("--tracker", "tracker", metavar="HOST:PORT", default=None,
                 help="Run on a free board of the bundle's target that this tracker leases."),
    click.option("--key-file", type=click.Path(path_type=Path), default=None,
                 envvar="DEEPC_RPC_KEY_FILE", help=KEY_HELP + " [env: DEEPC_RPC_KEY_FILE]"),
    click.option("--tls-ca", type=click.Path(path_type=Path), default=None,
                 help="Use TLS, trusting this CA (or the server's self-signed certificate)."),
    click.option("--wait", type=float, default=None, metavar="SECONDS",
                 help="Longest a remote job may queue for a busy board (default: the"
                      " server's limit)."),
]


def remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The options that send a verb's runs to a board; the verb gets `remote` (a Remote, or
    None to run here)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, remote: str | None, tracker: str | None, key_file: Path | None,
                tls_ca: Path | None, wait: float | None, **kwargs: Any) -> Any:
        spec = None
        if remote or tracker:
            from deepc.rpc.remote import Remote

            spec = Remote(remote, tracker, key_file, tls_ca, wait)
        return fn(*args, remote=spec, **kwargs)

    for option in reversed(REMOTE_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def tls_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--tls-key", type=click.Path(path_type=Path), default=None,
                      help="The TLS private key (with --tls-cert).")(fn)
    return click.option("--tls-cert", type=click.Path(path_type=Path), default=None,
                        help="Serve over TLS with this certificate.")(fn)


def _server_tls(cert: Path | None, key: Path | None) -> Any:
    if not cert and not key:
        return None
    from deepc.errors import DeepcError
    from deepc.rpc.auth import server_tls

    if not (cert and key):
        raise DeepcError("TLS needs both --tls-cert and --tls-key")
    return server_tls(cert, key)


@click.group("rpc")
def rpc() -> None:
    """Serve boards, pool them behind a tracker, and make keys (see docs/rpc.md)."""


@rpc.command("keygen")
@click.argument("key_file", type=click.Path(path_type=Path))
@handle_errors
def keygen(key_file: Path) -> None:
    """Write a new random shared key to KEY_FILE (mode 0600); copy it to every machine."""
    from deepc.rpc.auth import write_key

    try:
        write_key(key_file)
    except FileExistsError:
        from deepc.errors import DeepcError

        raise DeepcError(f"{key_file} exists already — keep it, or remove it first") from None
    console.print(f"[green]wrote[/] {key_file}", highlight=False)


@rpc.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=9090, show_default=True, help="Port (0: any free one).")
@click.option("--key-file", type=click.Path(path_type=Path), required=True, help=KEY_HELP)
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where bundles and jobs live (default: the deepc cache's rpc-server/).")
@click.option("--emulator", is_flag=True,
              help="Also run bundles for other architectures under their target's emulator.")
@click.option("--target", default="host", show_default=True,
              help="The target name this board serves, as clients ask the tracker for it.")
@click.option("--tracker", default=None, metavar="HOST:PORT", help="Register with this tracker.")
@click.option("--advertise", default=None, metavar="HOST",
              help="The address the tracker gives clients (default: ours as it sees it).")
@tls_options
@click.option("--tracker-tls-ca", type=click.Path(path_type=Path), default=None,
              help="Reach the tracker over TLS, trusting this CA.")
@click.option("--max-upload-mib", default=1024, show_default=True, help="Largest bundle.")
@click.option("--max-tensor-mib", default=256, show_default=True, help="Largest tensor.")
@click.option("--max-cache-mib", default=8192, show_default=True,
              help="Bundles kept in the cache; the least recently used are dropped first.")
@click.option("--job-timeout", default=600.0, show_default=True, help="Seconds per job.")
@click.option("--idle-timeout", default=120.0, show_default=True,
              help="Seconds a silent connection stays open.")
@click.option("--queue-length", default=32, show_default=True, help="Jobs that may wait.")
@click.option("--queue-timeout", default=1800.0, show_default=True,
              help="Seconds a job may wait for the board.")
@click.option("--lifetime", default=None, type=float, help="Stop after this many seconds.")
@handle_errors
def serve(host: str, port: int, key_file: Path, cache_dir: Path | None, emulator: bool,
          target: str, tracker: str | None, advertise: str | None, tls_cert: Path | None,
          tls_key: Path | None, tracker_tls_ca: Path | None, max_upload_mib: int,
          max_tensor_mib: int, max_cache_mib: int, job_timeout: float, idle_timeout: float,
          queue_length: int, queue_timeout: float, lifetime: float | None) -> None:
    """Serve this machine as a board: receive bundles, run and time them for clients."""
    from deepc.cache import cache_dir as default_cache
    from deepc.rpc.auth import client_tls, read_key
    from deepc.rpc.server import Limits, Server, ServerConfig

    limits = Limits(max_upload_bytes=max_upload_mib << 20, max_tensor_bytes=max_tensor_mib << 20,
                    job_timeout_s=job_timeout, idle_timeout_s=idle_timeout,
                    queue_length=queue_length, max_cache_bytes=max_cache_mib << 20,
                    queue_timeout_s=queue_timeout)
    config = ServerConfig(
        read_key(key_file), cache_dir or default_cache("rpc-server"), host, port, emulator,
        target, limits, _server_tls(tls_cert, tls_key), lifetime, tracker, advertise,
        client_tls(tracker_tls_ca) if tracker_tls_ca else None)
    server = _bound(lambda: Server(config), host, port)
    where = f"{server.address[0]}:{server.address[1]}"
    console.print(f"serving target {target!r} on {where}{' with TLS' if config.tls else ''}"
                  f"{', emulated targets too' if emulator else ''}; cache {config.cache_dir}"
                  f"{'; registered with ' + tracker if tracker else ''} — Ctrl-C stops",
                  highlight=False, soft_wrap=True)
    server.serve()


@rpc.command("tracker")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9190, show_default=True, help="Port (0: any free one).")
@click.option("--key-file", type=click.Path(path_type=Path), required=True, help=KEY_HELP)
@tls_options
@click.option("--queue-timeout", default=1800.0, show_default=True,
              help="Seconds a client may wait for a free board.")
@click.option("--lifetime", default=None, type=float, help="Stop after this many seconds.")
@handle_errors
def tracker_cmd(host: str, port: int, key_file: Path, tls_cert: Path | None,
                tls_key: Path | None, queue_timeout: float, lifetime: float | None) -> None:
    """Pool boards: each client gets a free board of its target, the rest queue."""
    from deepc.rpc.auth import read_key
    from deepc.rpc.tracker import Tracker

    tracker = _bound(lambda: Tracker(read_key(key_file), host, port,
                                     _server_tls(tls_cert, tls_key), lifetime, queue_timeout),
                     host, port)
    console.print(f"tracker on {tracker.address[0]}:{tracker.address[1]} — Ctrl-C stops",
                  highlight=False)
    tracker.serve()


def _bound(make: Callable[[], Any], host: str, port: int) -> Any:
    """A server bound to host:port, or a one-line error saying why it cannot be."""
    from deepc.errors import DeepcError

    try:
        return make()
    except OSError as e:
        raise DeepcError(f"cannot listen on {host}:{port}: {e.strerror} — pick another"
                         " --port, or stop what uses it") from None

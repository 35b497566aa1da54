"""A board on 127.0.0.1: remote runs match local ones; bad keys, bad frames and bad bundles are
refused, crashes and hangs reported, and the server goes on serving the next good request."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.rpc import Client, Limits
from deepc.rpc.client import connect, handshake
from deepc.rpc.errors import (
    AuthError,
    BusyError,
    JobTimeoutError,
    ProtocolError,
    RemoteJobError,
    RpcError,
)
from deepc.rpc.protocol import MAGIC, PREFIX, PROTOCOL_VERSION, Channel
from tests.rpc.conftest import KEY, TEST_LIMITS, Running, stub_bundle


def check_matches_local(address: tuple[str, int], bundle: Path, seed: int = 0) -> None:
    model = deepc.load(bundle)
    feeds = model.random_inputs(seed)
    with Client(address, KEY) as client:
        remote = client.run(bundle, feeds)
    local = model.run(feeds)
    assert remote.keys() == local.keys()
    for name in local:
        assert remote[name].dtype == local[name].dtype
        np.testing.assert_array_equal(remote[name], local[name])


def authed(address: tuple[str, int]) -> Channel:
    channel = connect(address)
    handshake(channel, KEY)
    return channel


def test_host_run_matches_local(server: Running, bundles: dict[str, Path]) -> None:
    check_matches_local(server.address, bundles["host"])


def test_emulated_rpi4_run_matches_local(server: Running, rpi4_bundle: Path) -> None:
    check_matches_local(server.address, rpi4_bundle)


def test_time_reports_each_run_and_caches_the_upload(server: Running,
                                                     bundles: dict[str, Path]) -> None:
    model = deepc.load(bundles["host"])
    with Client(server.address, KEY) as client:
        times = client.time(bundles["host"], model.random_inputs(), runs=5, warmup=1)
        sha = client.upload(bundles["host"])
    assert len(times.seconds) == 5 and all(s > 0 for s in times.seconds)
    assert not times.emulated and times.target == "host" and times.threads >= 1
    cached = server.server.jobs.tar(sha)
    assert cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == sha


def test_emulated_time_is_flagged(server: Running, rpi4_bundle: Path) -> None:
    with Client(server.address, KEY) as client:
        times = client.time(rpi4_bundle, deepc.load(rpi4_bundle).random_inputs(), runs=2)
    assert times.emulated and "qemu" in (times.emulator or "")


def test_server_without_emulator_refuses_foreign_bundles(start_server: Callable[..., Running],
                                                        rpi4_bundle: Path) -> None:
    native = start_server(emulator=False)
    with Client(native.address, KEY) as client, pytest.raises(RemoteJobError, match="--emulator"):
        client.run(rpi4_bundle, deepc.load(rpi4_bundle).random_inputs())


def test_wrong_key_is_refused(server: Running, bundles: dict[str, Path]) -> None:
    with pytest.raises(AuthError, match="refused the key"):
        Client(server.address, b"not the key, but long enough")
    check_matches_local(server.address, bundles["host"])


def send_raw(address: tuple[str, int], data: bytes, authenticate: bool = True) -> Channel:
    channel = authed(address) if authenticate else connect(address)
    if not authenticate:
        channel.expect("hello")
    channel.sock.sendall(data)
    return channel


def frame(header: bytes, payload_size: int, version: int = PROTOCOL_VERSION) -> bytes:
    return PREFIX.pack(MAGIC, version, 0, len(header), payload_size) + header


def refused(channel: Channel, match: str) -> None:
    """The server answers with an error frame naming the problem, then hangs up."""
    with pytest.raises(RpcError, match=match):
        channel.recv(1 << 20)
    with pytest.raises(RpcError):  # ClosedError: nothing follows
        channel.recv(1 << 20)
    channel.close()


def upload_frame(data: bytes) -> bytes:
    header = b'{"type":"upload","sha256":"' + hashlib.sha256(data).hexdigest().encode() + b'"}'
    return frame(header, len(data)) + data


def test_oversized_upload_is_refused(server: Running, bundles: dict[str, Path]) -> None:
    header = b'{"type":"upload","sha256":"' + b"0" * 64 + b'"}'
    channel = send_raw(server.address, frame(header, TEST_LIMITS.max_upload_bytes + 1))
    refused(channel, "upload limit")
    check_matches_local(server.address, bundles["host"])


def test_truncated_frame_is_dropped(server: Running, bundles: dict[str, Path]) -> None:
    data = bundles["host"].read_bytes()
    channel = send_raw(server.address, upload_frame(data)[: len(data) // 2])
    channel.sock.shutdown(socket.SHUT_WR)  # the client stops mid-frame
    refused(channel, "truncated")
    check_matches_local(server.address, bundles["host"])


def test_garbage_bytes_are_refused(server: Running, bundles: dict[str, Path]) -> None:
    refused(send_raw(server.address, b"GET / HTTP/1.1\r\n\r\n" * 4, authenticate=False),
            "does not speak")
    refused(send_raw(server.address, bytes(range(256)) * 4), "does not speak")
    refused(send_raw(server.address, frame(b"[not json", 0)), "not JSON")
    check_matches_local(server.address, bundles["host"])


def test_client_with_other_protocol_version_is_told(server: Running) -> None:
    channel = send_raw(server.address, frame(b'{"type":"has"}', 0, version=PROTOCOL_VERSION + 1))
    refused(channel, "protocol version")


def tar_with(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload_refused(address: tuple[str, int], data: bytes, match: str) -> None:
    """The upload is answered with an error, and the connection goes on serving."""
    channel = send_raw(address, upload_frame(data))
    with pytest.raises(RemoteJobError, match=match):
        channel.recv(1 << 20)
    channel.send({"type": "has", "sha256": hashlib.sha256(data).hexdigest()})
    assert channel.expect("has").header["present"] is False
    channel.close()


def test_archive_escaping_the_cache_is_refused(server: Running, tmp_path: Path,
                                               bundles: dict[str, Path]) -> None:
    evil = tar_with({"manifest.json": b"{}", "../../escaped.txt": b"pwned",
                     "/tmp/absolute.txt": b"pwned"})
    upload_refused(server.address, evil, "unexpected entry")
    cache = server.server.jobs.cache
    assert not (cache.parent / "escaped.txt").exists()
    assert not any(p.name == "escaped.txt" for p in cache.parent.parent.rglob("escaped.txt"))
    check_matches_local(server.address, bundles["host"])


def test_link_in_archive_is_refused(server: Running) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("lib/model.so")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    upload_refused(server.address, buf.getvalue(), "unexpected entry")


def test_bad_checksum_is_refused(server: Running, bundles: dict[str, Path]) -> None:
    with tarfile.open(bundles["host"]) as tar:
        entries = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    entries["params.bin"] = bytes(b ^ 1 for b in entries["params.bin"][:64]) + \
        entries["params.bin"][64:]
    upload_refused(server.address, tar_with(entries), "checksum")
    upload_refused(server.address, b"not a tar at all" * 100, "not a tar")
    check_matches_local(server.address, bundles["host"])


def test_malformed_tensors_are_refused(server: Running, bundles: dict[str, Path]) -> None:
    with Client(server.address, KEY) as client:
        sha = client.upload(bundles["host"])
    channel = authed(server.address)
    header = {"type": "run", "sha256": sha,
              "tensors": [{"name": "x", "dtype": "object", "shape": [1]}]}
    channel.send(header, b"\0" * 8)
    refused(channel, "bad tensor description")
    channel = authed(server.address)
    channel.send({**header, "tensors": [{"name": "x", "dtype": "float32", "shape": [1 << 20]}]})
    refused(channel, "tensor limit")
    check_matches_local(server.address, bundles["host"])


def test_wrong_input_shape_is_reported(server: Running, bundles: dict[str, Path]) -> None:
    with Client(server.address, KEY) as client, pytest.raises(RemoteJobError, match="shape"):
        client.run(bundles["host"], {"input": np.zeros((1, 2), np.float32)})


def test_crashing_job_is_reported(server: Running, tmp_path: Path,
                                  bundles: dict[str, Path]) -> None:
    crash = stub_bundle(tmp_path, bundles["host"], "raise(SIGSEGV); return 0;")
    feeds = deepc.load(bundles["host"]).random_inputs()
    with Client(server.address, KEY) as client:
        with pytest.raises(RemoteJobError, match=r"crashed .*SIGSEGV"):
            client.run(crash, feeds)
        assert client.run(bundles["host"], feeds)  # the same connection goes on
    check_matches_local(server.address, bundles["host"])


def test_hanging_job_times_out(start_server: Callable[..., Running], tmp_path: Path,
                               bundles: dict[str, Path]) -> None:
    # the real job after it must fit the time-out too: a fresh interpreter on a loaded
    # 2-core machine took more than 1.5 s
    board = start_server(Limits(job_timeout_s=6, idle_timeout_s=10))
    hang = stub_bundle(tmp_path, bundles["host"], "sleep(30); return 0;")
    feeds = deepc.load(bundles["host"]).random_inputs()
    with Client(board.address, KEY) as client, pytest.raises(JobTimeoutError, match="time-out"):
        client.run(hang, feeds)
    check_matches_local(board.address, bundles["host"])


def test_busy_board_queues_then_refuses(start_server: Callable[..., Running], tmp_path: Path,
                                        bundles: dict[str, Path]) -> None:
    board = start_server(Limits(job_timeout_s=30, idle_timeout_s=30, queue_length=1))
    slow = stub_bundle(tmp_path, bundles["host"], "sleep(3); return 0;")
    feeds = deepc.load(bundles["host"]).random_inputs()
    with Client(board.address, KEY) as client:
        client.upload(slow)
    errors: list[Exception] = []

    def hold() -> None:
        try:
            with Client(board.address, KEY) as c:
                c.run(slow, feeds)
        except Exception as e:
            errors.append(e)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        import time

        time.sleep(1.0)  # the slow job holds the board
        with Client(board.address, KEY, wait=0.3) as impatient, \
                pytest.raises(BusyError, match="busy"):
            impatient.run(bundles["host"], feeds)
    finally:
        holder.join(30)
    assert not errors
    check_matches_local(board.address, bundles["host"])


def test_least_recently_used_bundles_are_evicted(start_server: Callable[..., Running],
                                                 bundles: dict[str, Path], tmp_path: Path) -> None:
    size = bundles["host"].stat().st_size
    board = start_server(Limits(max_cache_bytes=2 * size))  # room for this one, not two
    other = stub_bundle(tmp_path, bundles["host"], "return 0;")
    with Client(board.address, KEY) as client:
        first = client.upload(bundles["host"])
        assert (board.server.jobs.cache / "bundles" / first[:32]).is_dir()
        second = client.upload(other)
        assert not board.server.jobs.tar(first).exists()
        assert not (board.server.jobs.cache / "bundles" / first[:32]).exists()
        assert board.server.jobs.tar(second).exists()
    check_matches_local(board.address, bundles["host"])  # uploaded again when needed


def test_two_clients_at_once_both_finish(server: Running, bundles: dict[str, Path]) -> None:
    failures: list[BaseException] = []

    def one(seed: int) -> None:
        try:
            check_matches_local(server.address, bundles["host"], seed)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and not any(t.is_alive() for t in threads)


def test_idle_connection_is_closed(server: Running) -> None:
    channel = authed(server.address)
    channel.sock.settimeout(TEST_LIMITS.idle_timeout_s + 5)
    with pytest.raises(RpcError):  # closed by the server after its idle time-out
        channel.recv(0)


def test_protocol_error_message_names_the_limit() -> None:
    assert "limit" in str(ProtocolError("a frame of 9 bytes is over the 8-byte limit"))

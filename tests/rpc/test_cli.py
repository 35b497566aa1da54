"""`deepc run/bench --remote`, `deepc rpc serve|keygen`: results as local, errors one line each."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deepc.rpc.protocol import MAGIC, PREFIX, PROTOCOL_VERSION
from tests.rpc.conftest import EXAMPLE, KEY, Running, free_port, stub_bundle
from tests.test_cli import assert_one_line_error, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    return tmp_path / "key"


def remote(running: Running) -> str:
    return f"127.0.0.1:{running.address[1]}"


def test_run_remote_matches_local(server: Running, bundles: dict[str, Path],
                                  key_file: Path) -> None:
    code, local, err = run("run", str(bundles["host"]), "--json", "--seed", "4")
    assert code == 0, err
    code, out, err = run("run", str(bundles["host"]), "--json", "--seed", "4", "--remote",
                         remote(server), "--key-file", str(key_file))
    assert code == 0, err
    assert json.loads(out) == json.loads(local)


def test_run_remote_writes_outputs(server: Running, bundles: dict[str, Path], key_file: Path,
                                   tmp_path: Path) -> None:
    code, _, err = run("run", str(bundles["host"]), "-d", str(tmp_path / "out"), "--remote",
                       remote(server), "--key-file", str(key_file))
    assert code == 0, err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["probs.npy"]


def test_wrong_key(server: Running, bundles: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "other").write_text("another key, long enough\n")
    code, _, err = run("run", str(bundles["host"]), "--remote", remote(server), "--key-file",
                       str(tmp_path / "other"))
    assert_one_line_error(code, err, 5, "refused the key")


def test_unreachable_host(bundles: dict[str, Path], key_file: Path) -> None:
    code, _, err = run("run", str(bundles["host"]), "--remote", f"127.0.0.1:{free_port()}",
                       "--key-file", str(key_file))
    assert_one_line_error(code, err, 4, "cannot reach 127.0.0.1")


def test_missing_key_file(bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPC_RPC_KEY_FILE", raising=False)
    code, _, err = run("run", str(bundles["host"]), "--remote", "127.0.0.1:1")
    assert_one_line_error(code, err, 1, "--key-file")


@pytest.fixture
def old_server() -> Iterator[int]:
    """A listener that answers every connection with a frame of another protocol version."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def answer() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        with sock:
            sock.sendall(PREFIX.pack(MAGIC, PROTOCOL_VERSION + 1, 0, 2, 0) + b"{}")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(10)


def test_protocol_version_mismatch(old_server: int, bundles: dict[str, Path],
                                   key_file: Path) -> None:
    code, _, err = run("run", str(bundles["host"]), "--remote", f"127.0.0.1:{old_server}",
                       "--key-file", str(key_file))
    assert_one_line_error(code, err, 6, f"protocol version {PROTOCOL_VERSION + 1}")


def test_job_timeout(start_server: Callable[..., Running], bundles: dict[str, Path],
                     key_file: Path, tmp_path: Path) -> None:
    from deepc.rpc import Limits

    board = start_server(Limits(job_timeout_s=1.0, idle_timeout_s=5))
    hang = stub_bundle(tmp_path, bundles["host"], "sleep(30); return 0;")
    code, _, err = run("run", str(hang), "--remote", remote(board), "--key-file", str(key_file))
    assert_one_line_error(code, err, 75, "time-out")


def test_bench_remote(server: Running, key_file: Path) -> None:
    code, out, err = run("bench", str(EXAMPLE), "--runs", "3", "--warmup", "1", "--json",
                         "--remote", remote(server), "--key-file", str(key_file))
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs_match"] is True and result["runs"] == 3
    assert result["emulated"] is False and result["onnxruntime_ms"] is None


def test_keygen(tmp_path: Path) -> None:
    code, _, err = run("rpc", "keygen", str(tmp_path / "key"))
    assert code == 0, err
    assert len((tmp_path / "key").read_text().strip()) == 64
    code, _, err = run("rpc", "keygen", str(tmp_path / "key"))
    assert_one_line_error(code, err, 1, "exists already")


def test_serve_command(bundles: dict[str, Path], key_file: Path, tmp_path: Path) -> None:
    """`deepc rpc serve` in its own process, as on a board; it stops by itself."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "300",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepc.cli", "rpc", "serve", "--port", "0", "--key-file",
         str(key_file), "--cache-dir", str(tmp_path / "cache"), "--lifetime", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving target 'host' on 127.0.0.1:" in line, line + proc.stderr.read()
        port = line.split("127.0.0.1:")[1].split()[0].rstrip(";,")
        code, _, err = run("run", str(bundles["host"]), "--json", "--remote",
                           f"127.0.0.1:{port}", "--key-file", str(key_file))
        assert code == 0, err
        assert (tmp_path / "cache" / "tars").is_dir()
    finally:
        proc.kill()
        proc.wait(10)


def test_serve_on_a_used_port(server: Running, key_file: Path) -> None:
    code, _, err = run("rpc", "serve", "--port", str(server.address[1]), "--key-file",
                       str(key_file), "--lifetime", "1")
    assert_one_line_error(code, err, 1, "cannot listen on")

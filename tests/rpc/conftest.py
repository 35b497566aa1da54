"""Boards on 127.0.0.1 for the RPC tests: servers in threads on free ports, stopping by
themselves, and tiny_cnn compiled for the host and (emulated) rpi4."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import deepc
from deepc.errors import ToolchainError
from deepc.rpc import Limits, Server, ServerConfig, Tracker
from deepc.runtime.bundle import read_bundle, write_bundle
from deepc.runtime.emulated import emulator_argv
from deepc.target import load_target
from tests.conftest import ROOT

EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"
KEY = b"0123456789abcdef0123456789abcdef"
LIFETIME_S = 300.0  # every server and tracker here stops by itself after this long
TEST_LIMITS = Limits(max_upload_bytes=8 << 20, max_tensor_bytes=1 << 20, job_timeout_s=60,
                     idle_timeout_s=3, queue_length=4, queue_timeout_s=60)


class Running:
    """A Server or Tracker serving in a daemon thread until `stop()`."""

    def __init__(self, server: Any):
        self.server = server
        self.thread = threading.Thread(target=server.serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.address

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(10)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start servers on 127.0.0.1 (a free port each); all stop when the test ends."""
    started: list[Running] = []

    def start(limits: Limits = TEST_LIMITS, emulator: bool = True, **config: Any) -> Running:
        cache = tmp_path / f"server{len(started)}"
        running = Running(Server(ServerConfig(KEY, cache, "127.0.0.1", 0, emulator,
                                              limits=limits, lifetime_s=LIFETIME_S, **config)))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def server(start_server: Callable[..., Running]) -> Running:
    return start_server()


@pytest.fixture
def tracker() -> Iterator[Running]:
    running = Running(Tracker(KEY, "127.0.0.1", 0, lifetime_s=LIFETIME_S, queue_timeout_s=30))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny_cnn for the host; "rpi4" is added only where its cross compiler and qemu exist."""
    root = tmp_path_factory.mktemp("rpc-bundles")
    out = {"host": deepc.compile(EXAMPLE, "host").save(root / "host.tar")}
    target = load_target("rpi4")
    try:
        from deepc.backends.link import compiler

        compiler(target)
        emulator_argv(target.to_dict())
    except ToolchainError:
        return out
    out["rpi4"] = deepc.compile(EXAMPLE, target).save(root / "rpi4.tar")
    return out


@pytest.fixture
def rpi4_bundle(bundles: dict[str, Path]) -> Path:
    if "rpi4" not in bundles:
        pytest.skip("rpi4's cross compiler or qemu-aarch64 is not installed")
    return bundles["rpi4"]


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stub_bundle(tmp: Path, like: Path, c_body: str) -> Path:
    """A well-formed bundle (checksums verify) with `like`'s manifest and a library whose
    deepc_run is `c_body`: for a runner that crashes or hangs."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stub model library")
    source = tmp / "stub.c"
    source.write_text("#include <signal.h>\n#include <unistd.h>\n"
                      "int deepc_run(void **i, void **o, void *p, void *w) {" + c_body + "}\n"
                      "void deepc_set_num_threads(int n) {}\n"
                      "int deepc_get_num_threads(void) { return 1; }\n")
    library = tmp / "stub.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    model = read_bundle(like)
    m = model.manifest
    return write_bundle(tmp / "stub.tar", library=library, params={}, inputs=m["inputs"],
                        outputs=m["outputs"], target=m["target"], workspace_bytes=0)

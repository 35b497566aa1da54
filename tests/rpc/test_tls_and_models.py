"""TLS with a self-signed certificate; the server's imports (runtime only); the shared models
run remotely and matching local runs (all on the host, one emulated on rpi4)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.rpc import Client, Limits
from deepc.rpc.auth import client_tls, server_tls
from deepc.rpc.errors import UnreachableError
from tests.conftest import SHARED_MODELS, shared_model
from tests.rpc.conftest import KEY, Running
from tests.rpc.test_server import check_matches_local


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed to make a test certificate")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls(start_server: Callable[..., Running], certificate: tuple[Path, Path],
             bundles: dict[str, Path]) -> None:
    board = start_server(tls=server_tls(*certificate))
    model = deepc.load(bundles["host"])
    feeds = model.random_inputs()
    with Client(board.address, KEY, tls=client_tls(certificate[0])) as client:
        out = client.run(bundles["host"], feeds)
    np.testing.assert_array_equal(out["probs"], model.run(feeds)["probs"])
    with pytest.raises(UnreachableError, match="did not answer"):
        Client(board.address, KEY, timeout=1.0)  # plain text to a TLS server
    with pytest.raises(UnreachableError, match="TLS"):
        Client(board.address, KEY, tls=client_tls(None))  # the self-signed cert is not trusted


def test_plain_server_refuses_a_tls_client(server: Running,
                                           certificate: tuple[Path, Path]) -> None:
    with pytest.raises(UnreachableError, match="TLS"):
        Client(server.address, KEY, tls=client_tls(certificate[0]))


def test_server_imports_the_runtime_only() -> None:
    """A board has the runtime and numpy; the server and its jobs never need a compiler."""
    code = ("import sys, deepc.rpc.server, deepc.rpc.worker, deepc.cli_rpc\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('llvmlite', 'onnx', 'onnxruntime') or m.startswith(('deepc.compiler',"
            " 'deepc.backends', 'deepc.frontends', 'deepc.passes', 'deepc.lowering',"
            " 'deepc.schedule')))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def model_board(start_server: Callable[..., Running]) -> Running:
    """A board with the default limits: the shared models' bundles are tens of MiB."""
    return start_server(Limits())


@pytest.mark.models
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_on_host_board(name: str, model_board: Running, tmp_path: Path) -> None:
    bundle = deepc.compile(shared_model(name), "host").save(tmp_path / f"{name}.tar")
    check_matches_local(model_board.address, bundle)


@pytest.mark.models
@pytest.mark.toolchain
def test_shared_model_on_emulated_rpi4_board(model_board: Running,
                                             rpi4_bundle: Path,
                                             tmp_path: Path) -> None:
    bundle = deepc.compile(shared_model("squeezenet1_1"), "rpi4").save(tmp_path / "sq.tar")
    check_matches_local(model_board.address, bundle)


def test_board_without_compilers_serves(start_server: Callable[..., Running],
                                        bundles: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs run with llvmlite and onnx unimportable, as on a board with the runtime only."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('llvmlite', 'onnx', 'onnxruntime'):\n"
        "            raise ImportError(f'{name} is not installed on this board')\n"
        "sys.meta_path.insert(0, Block())\n")
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(blocker), path) if p))
    board = start_server()  # its jobs inherit the environment
    check_matches_local(board.address, bundles["host"])
    if "rpi4" in bundles:
        check_matches_local(board.address, bundles["rpi4"])

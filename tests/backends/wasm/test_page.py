"""The bundle's example page in headless Chromium shows what Node computes on the same input."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path

import numpy as np
import pytest

from deepc.runtime.bundle import read_bundle
from deepc.runtime.wasm_assets import DRIVER
from deepc.runtime.wasm_model import node_argv
from tests.backends.wasm.conftest import chromium

pytestmark = [pytest.mark.toolchain, pytest.mark.models, pytest.mark.xdist_group("wasm")]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--virtual-time-budget=60000", "--dump-dom")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page_dom(root: Path) -> str:
    """example/index.html of the extracted bundle at `root`, as Chromium leaves its DOM."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(root)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # until the server accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="deepc-chromium-") as profile:
            done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                   f"http://127.0.0.1:{port}/example/index.html"],
                                  capture_output=True, text=True, timeout=180, check=False)
        return done.stdout
    finally:
        server.terminate()
        server.wait()


def element(dom: str, ident: str) -> str:
    found = re.search(rf'id="{ident}"[^>]*>(.*?)</', dom, re.S)
    assert found, f"no #{ident} in the page: {dom[-500:]}"
    return unescape(found.group(1))


def test_example_page_shows_the_node_output(wasm_bundles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = read_bundle(wasm_bundles["squeezenet1_1"])
    out = tmp_path / "out.bin"
    subprocess.run([*node_argv(bundle.target), str(DRIVER), str(bundle.root), "--example",
                    "--out", str(out)], check=True, capture_output=True)
    node = np.fromfile(out, dtype="<f4")
    dom = page_dom(bundle.root)
    assert element(dom, "status") == "done", element(dom, "status")
    shown = np.array(json.loads(element(dom, "output")), dtype=np.float32)
    np.testing.assert_allclose(shown, node[:shown.size], rtol=1e-6, atol=1e-7)
    top = [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", dom)]
    assert top == list(np.argsort(-node, kind="stable")[:5])
    assert float(element(dom, "time")) >= 0  # virtual time under --virtual-time-budget: 0

"""How `run`, `bench` and the tuner reach a board: straight to a server, or through a tracker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepc.errors import DeepcError
from deepc.rpc.auth import client_tls, read_key
from deepc.rpc.client import Client
from deepc.rpc.tracker import leased_client
from deepc.runtime.bundle import read_bundle
from deepc.runtime.inputs import bundle_inputs

KEY_ENV = "DEEPC_RPC_KEY_FILE"


@dataclass(frozen=True)
class Remote:
    """A board at `address` (HOST:PORT), or any free board of the bundle's target that the
    `tracker` leases; `key_file` holds the shared key, `tls_ca` turns TLS on."""

    address: str | None = None
    tracker: str | None = None
    key_file: str | os.PathLike[str] | None = None
    tls_ca: str | os.PathLike[str] | None = None
    wait: float | None = None  # seconds a job may queue for the board, else BusyError

    def __post_init__(self) -> None:
        if bool(self.address) == bool(self.tracker):
            raise DeepcError("name a board with --remote HOST:PORT or a tracker with"
                             " --tracker HOST:PORT (one of the two)")

    def key(self) -> bytes:
        path = self.key_file or os.environ.get(KEY_ENV)
        if not path:
            raise DeepcError(f"remote runs need the server's key: pass --key-file KEY (or set"
                             f" {KEY_ENV})")
        return read_key(path)

    @contextlib.contextmanager
    def client(self, target: str = "host") -> Iterator[Client]:
        """A connected Client; through a tracker, on a board of `target` leased for the block."""
        key = self.key()
        tls = client_tls(self.tls_ca) if self.tls_ca else None
        if self.tracker:
            with leased_client(self.tracker, key, target, tls=tls, wait=self.wait) as client:
                yield client
            return
        assert self.address is not None
        with Client(self.address, key, tls=tls, wait=self.wait) as client:
            yield client

    def run(self, bundle: str | os.PathLike[str], inputs: Mapping[str, Any] | None = None,
            seed: int = 0, threads: int = 0) -> dict[str, np.ndarray]:
        """`deepc run --remote`: the bundle's outputs computed on the board; inputs not given
        are seeded random, as in a local run."""
        contents = read_bundle(bundle)
        feeds = {**bundle_inputs(contents, seed), **(inputs or {})}
        with self.client(contents.target.get("name", "host")) as client:
            return client.run(Path(bundle), feeds, threads)

"""The tracker on 127.0.0.1: boards register by target, each client gets a free one, the rest
queue in order, and a client waits no longer than it asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.rpc import leased_client
from deepc.rpc.errors import BusyError, RpcError
from deepc.rpc.remote import Remote
from tests.rpc.conftest import KEY, Running


def wait_for_boards(tracker: Running, target: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(tracker.server.boards().get(target, [])) < n:
        assert time.monotonic() < deadline, tracker.server.boards()
        time.sleep(0.05)


def boards(start_server: Callable[..., Running], tracker: Running, n: int) -> list[Running]:
    where = f"{tracker.address[0]}:{tracker.address[1]}"
    started = [start_server(tracker=where, target="host") for _ in range(n)]
    wait_for_boards(tracker, "host", n)
    return started


def test_tracker_hands_out_free_boards_and_queues(start_server: Callable[..., Running],
                                                  tracker: Running) -> None:
    ports = {b.address[1] for b in boards(start_server, tracker, 2)}
    order: list[str] = []
    with leased_client(tracker.address, KEY, "host") as first, \
            leased_client(tracker.address, KEY, "host") as second:
        assert {first.channel.sock.getpeername()[1],
                second.channel.sock.getpeername()[1]} == ports  # two boards, one each
        assert all(busy for _, _, busy in tracker.server.boards()["host"])

        def third() -> None:
            with leased_client(tracker.address, KEY, "host", wait=20):
                order.append("third")

        waiter = threading.Thread(target=third)
        waiter.start()
        time.sleep(0.5)
        assert not order  # queued while both boards are leased
        order.append("released")
    waiter.join(20)
    assert order == ["released", "third"]


def test_waiting_too_long_is_busy(start_server: Callable[..., Running],
                                  tracker: Running) -> None:
    boards(start_server, tracker, 1)
    with leased_client(tracker.address, KEY, "host"), \
            pytest.raises(BusyError, match="busy"), \
            leased_client(tracker.address, KEY, "host", wait=0.3):
        pass


def test_unknown_target_is_reported(tracker: Running) -> None:
    with pytest.raises(RpcError, match="no board of target 'rpi9'"), \
            leased_client(tracker.address, KEY, "rpi9", wait=1):
        pass


def test_board_leaves_the_pool_when_it_stops(start_server: Callable[..., Running],
                                             tracker: Running) -> None:
    board = boards(start_server, tracker, 1)[0]
    board.stop()
    deadline = time.monotonic() + 30
    while tracker.server.boards().get("host"):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_remote_run_through_the_tracker(start_server: Callable[..., Running], tracker: Running,
                                        bundles: dict[str, Path], tmp_path: Path) -> None:
    boards(start_server, tracker, 1)
    (tmp_path / "key").write_bytes(KEY)
    remote = Remote(tracker=f"127.0.0.1:{tracker.address[1]}", key_file=tmp_path / "key")
    model = deepc.load(bundles["host"])
    outputs = remote.run(bundles["host"], seed=3)
    for name, value in model.run(model.random_inputs(3)).items():
        np.testing.assert_array_equal(outputs[name], value)

"""`tune --remote`: candidates applied to whole bundles timed by a board (here a server on
127.0.0.1), their outputs checked against the default bundle's."""

from __future__ import annotations

import json

from deepc.compiler.tuning import tune_model
from deepc.rpc.remote import Remote
from tests.rpc.conftest import KEY, server, start_server  # noqa: F401 — fixtures
from tests.tune.conftest import TINY


def test_tune_through_rpc(server, tmp_path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    key = tmp_path / "key"
    key.write_bytes(KEY)
    host, port = server.address
    log = tmp_path / "remote.jsonl"
    summary = tune_model(TINY, "host", log=log, budget_s=25,
                         remote=Remote(f"{host}:{port}", key_file=key))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    # every task's default at least (a loaded CI machine may get no further in the budget)
    assert summary.trials == len(rows) and summary.trials >= len(summary.tasks)
    assert all(r["cost"] for r in rows if r["candidate"] == 0)
    assert not [r for r in rows if (r["error"] or "").startswith(("failed", "wrong"))]

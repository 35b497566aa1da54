"""Knobs that the scheduler takes but that fail once applied (a block_reduction that does not
fit the nest): the candidate is a rejected row of the log and the search goes on — with
`--remote` such an error used to end the whole run."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from deepc.compiler import tuning
from deepc.compiler.tuning import RemoteMeasurer, tune_model
from deepc.errors import ScheduleError, ToolchainError
from deepc.rpc.remote import Remote
from deepc.tune import tuner
from deepc.tune.log import TuneLog
from deepc.tune.measure import Measurement
from tests.rpc.conftest import KEY, server, start_server  # noqa: F401 — fixtures
from tests.tune.conftest import TINY
from tests.tune.test_space import _Clock, _FlatTask


class _OddFailsToApply:
    """Odd values of the knob pass task.schedule but fail when the steps are applied."""

    def measure(self, task: Any, knobs: dict[str, Any], steps: Any) -> Measurement:
        if knobs["v"] % 2:
            raise ScheduleError(f"block_reduction: 3 blocks do not divide rc ({knobs['v']})")
        return Measurement(1e-3, None, [np.zeros(1)], 1e-3, 1.0)

    def close(self) -> None:
        pass


def test_a_candidate_that_fails_to_apply_is_a_rejected_row(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tuner, "time", _Clock())
    log = TuneLog(tmp_path / "l.jsonl", "t")
    summary = tuner.tune([_FlatTask("a")], _OddFailsToApply(), log,  # type: ignore[list-item]
                         budget_s=1)
    rows = list(log)[1:]
    odd = [r for r in rows if r.knobs["v"] % 2]
    even = [r for r in rows if not r.knobs["v"] % 2]
    first = rows.index(odd[0])
    assert any(not r.knobs["v"] % 2 for r in rows[first + 1:])  # measured after it
    assert all(r.cost is None and (r.error or "").startswith("rejected: block_reduction")
               for r in odd)
    assert all(r.cost and r.error is None for r in even)
    assert summary.tasks[0].errors == len(odd)


def test_remote_measurer_leaves_schedule_errors_to_the_search(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    task = _FlatTask("a")
    measurer = RemoteMeasurer(None, None, None)

    def fails(error: Exception) -> None:
        def compile_model(*args: Any, **kwargs: Any) -> Any:
            raise error
        monkeypatch.setattr(tuning, "compile_model", compile_model)

    try:
        fails(ScheduleError("block_reduction: no fit"))
        with pytest.raises(ScheduleError, match="no fit"):
            measurer.measure(task, {"v": 1}, [["block_reduction", "x", "y", 3]])
        fails(ToolchainError("cc failed"))  # other failures stay the candidate's error
        m = measurer.measure(task, {"v": 1}, [["block_reduction", "x", "y", 3]])
        assert m.cost is None and m.error == "failed: cc failed"
    finally:
        measurer.close()


def test_tune_remote_goes_on_past_knobs_that_fail_to_apply(server, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Every candidate but the default bundle fails when the model is compiled with it."""
    real = tuning.compile_model
    built: list[Any] = []

    def compile_model(*args: Any, **kwargs: Any) -> Any:
        if built:
            raise ScheduleError("block_reduction: rc is not under one accumulator")
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "compile_model", compile_model)
    monkeypatch.setattr(tuner, "time", _Clock())  # the budget in steps, not in the load
    key = tmp_path / "key"
    key.write_bytes(KEY)
    host, port = server.address
    log = tmp_path / "remote.jsonl"
    summary = tune_model(TINY, "host", log=log, budget_s=1,
                         remote=Remote(f"{host}:{port}", key_file=key))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(r["cost"] for r in rows if r["candidate"] == 0)
    tried = [r for r in rows if r["candidate"] != 0 and r["error"] != "duplicate"]
    assert all(r["error"].startswith("rejected: ") for r in tried)  # none measured
    applied = [r for r in tried if r["error"].startswith("rejected: block_reduction")]
    assert len(applied) > 1  # the search went on after the first
    assert summary.trials == len(rows)


def test_the_local_worker_reports_a_step_that_fails_to_apply_as_rejected(  # type: ignore[no-untyped-def]
        tiny_kernels, host) -> None:
    from deepc.tune.measure import LocalMeasurer
    from deepc.tune.tasks import extract_tasks

    task = extract_tasks(tiny_kernels, host)[0]
    steps = [*task.default.to_list(), ["block_reduction", "no_such_loop", "rc", 2]]
    measurer = LocalMeasurer(host, min_time=0.01)
    try:
        m = measurer.measure(task, dict(task.default.knobs), steps)
    finally:
        measurer.close()
    assert m.cost is None and m.error == "rejected: block_reduction: no loop named 'no_such_loop'"

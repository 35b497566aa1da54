"""The whole-model check of a tuning log (tune/model_check.py): records whose kernels do not
pay inside the model are logged as errors and no longer applied; the others stay."""

from __future__ import annotations

import time
from typing import Any

import pytest

from deepc.tune import model_check
from deepc.tune.log import TuneLog, TuneRecord, best_records
from deepc.tune.model_check import check_in_model


@pytest.fixture(autouse=True)
def _short_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model_check, "TIMED_S", 0.3)


def _log(tmp_path, claims: dict[str, float]) -> TuneLog:  # type: ignore[no-untyped-def]
    """A log whose workload w's best candidate claims a kernel time of claims[w] (the
    default's is 1)."""
    log = TuneLog(tmp_path / "t.jsonl", "fp")
    for w, cost in claims.items():
        log.append(TuneRecord(w, "fp", f"k_{w}", 0, {"v": 0}, 1.0))
        log.append(TuneRecord(w, "fp", f"k_{w}", 1, {"v": 1}, cost))
        log.append(TuneRecord(w, "fp", f"k_{w}", 2, {"v": 2}, cost + 0.05))
    return log


def _model(slow: dict[str, float]) -> Any:
    """A build whose run sleeps 2 ms, plus slow[w] ms for each workload w applied."""
    def build(tuned: dict[str, dict[str, Any]]) -> Any:
        extra = sum(ms for w, ms in slow.items() if w in tuned) / 1e3
        return lambda: time.sleep(0.002 + extra)
    return build


def test_a_record_that_slows_the_model_is_dropped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`a` claims the most and slows the model (it was fast only alone): it is dropped, and
    its next-best candidate with it; `b`, which pays, stays applied."""
    log = _log(tmp_path, {"a": 0.5, "b": 0.9})
    check = check_in_model(_model({"a": 1.0, "b": -0.5}), log, time.perf_counter() + 60)
    assert check is not None and check.dropped == ["a"]
    assert check.tuned_s < check.untuned_s
    best = best_records(list(TuneLog(log.path, "fp")), "fp")
    assert set(best) == {"b"}
    assert sum(r.error is not None for r in TuneLog(log.path, "fp")) == 2  # a's two winners
    assert check.rows == 2


def test_a_model_that_tuning_does_not_speed_up_runs_untuned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = _log(tmp_path, {"a": 0.5, "b": 0.9})
    check = check_in_model(_model({"a": 0.6, "b": 0.6}), log, time.perf_counter() + 60,
                           tries=1)
    assert check is not None and sorted(check.dropped) == ["a", "b"]
    assert best_records(list(TuneLog(log.path, "fp")), "fp") == {}


def test_a_gain_within_the_noise_is_not_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = _log(tmp_path, {"a": 0.5})
    check = check_in_model(_model({"a": 0.0}), log, time.perf_counter() + 60, tries=0)
    assert check is not None and check.dropped == ["a"]  # as fast: the untuned bundle


def test_a_faster_model_keeps_every_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = _log(tmp_path, {"a": 0.5})
    check = check_in_model(_model({"a": -1.0}), log, time.perf_counter() + 60)
    assert check is not None and check.dropped == []
    empty = TuneLog(tmp_path / "empty.jsonl", "fp")
    assert check_in_model(_model({}), empty, time.perf_counter()) is None

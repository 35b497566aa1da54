"""When a task's turn ends early: candidates measured without a new best count toward
STALE_TRIALS, other spellings of measured candidates (duplicates) do not, and a run of
duplicates alone ends the turn at STALE_DUPLICATES."""

from __future__ import annotations

from typing import Any

from deepc.schedule.schedule import Schedule
from deepc.tune import tuner
from deepc.tune.log import TuneLog
from tests.tune.test_space import _Clock, _Flat, _FlatTask


class _EvenTask(_FlatTask):
    """v and v+1 (v even) are one candidate; the seeds spell every other one twice: 2 is
    measured, 3 is a duplicate of it, 4 is measured, ..."""

    def schedule(self, knobs: dict[str, Any]) -> Schedule:
        return Schedule(knobs={"v": knobs["v"] // 2 * 2})

    def seeds(self) -> list[dict[str, Any]]:
        return [{"v": v} for v in range(2, 100)]


class _OnlyRespellings(_FlatTask):
    """Every candidate is another spelling of the default."""

    def schedule(self, knobs: dict[str, Any]) -> Schedule:
        return Schedule(knobs={"v": 0})

    def seeds(self) -> list[dict[str, Any]]:
        return [{"v": v} for v in range(1, 100)]


def _first_turn(tmp_path: Any, heavy: _FlatTask) -> list[Any]:
    """The log rows of the heavy task's first turn (after the two defaults)."""
    heavy.count = 1000  # its turn comes first
    log = TuneLog(tmp_path / "l.jsonl", "t")
    tuner.tune([heavy, _FlatTask("b")], _Flat(), log, budget_s=0.5)  # type: ignore[list-item]
    rows = list(log)
    assert [r.workload for r in rows[:2]] == ["a", "b"]
    turn = []
    for r in rows[2:]:
        if r.workload != "a":
            return turn
        turn.append(r)
    raise AssertionError("the heavy task's turn never ended")


def test_duplicates_do_not_count_toward_stale_trials(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tuner, "STALE_TRIALS", 10)
    monkeypatch.setattr(tuner, "time", _Clock())  # the budget in steps, not in the load
    turn = _first_turn(tmp_path, _EvenTask("a"))
    measured = [r for r in turn if r.error != "duplicate"]
    duplicates = [r for r in turn if r.error == "duplicate"]
    assert len(measured) == 10  # ten flat candidates, however many respellings between
    assert len(duplicates) == 9 and [r.knobs["v"] for r in turn][:4] == [2, 3, 4, 5]


def test_a_task_proposing_only_duplicates_still_ends(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tuner, "STALE_TRIALS", 10)
    monkeypatch.setattr(tuner, "STALE_DUPLICATES", 25)
    monkeypatch.setattr(tuner, "time", _Clock())
    turn = _first_turn(tmp_path, _OnlyRespellings("a"))
    assert len(turn) == 25 and all(r.error == "duplicate" for r in turn)

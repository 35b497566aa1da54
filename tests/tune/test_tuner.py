"""A short tune of the tiny model: it logs every measurement, resumes without measuring
again, rejects and records invalid candidates, and what it applies matches onnxruntime."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.compiler.tuning import tune_model
from deepc.tune import tuner
from deepc.tune.log import TuneRecord, best_knobs, best_records, read_log
from deepc.tune.measure import LocalMeasurer, Measurement
from deepc.tune.tasks import Task
from tests.tune.conftest import TINY, assert_matches_ort


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tuned_log(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("tune") / "tune.jsonl"
    summary = tune_model(TINY, "host", log=log, budget_s=6)
    assert summary.trials >= len(summary.tasks)
    assert summary.speedup >= 1.0
    return log


def test_log_has_a_record_per_measurement(tuned_log, host) -> None:  # type: ignore[no-untyped-def]
    rows = _lines(tuned_log)
    keys = {r["workload"] for r in rows}
    defaults = {r["workload"] for r in rows if r["candidate"] == 0 and r["cost"]}
    assert defaults == keys  # every task's default was measured first
    for r in rows:
        assert r["target"] == host.fingerprint()
        assert (r["cost"] is None) == bool(r["error"]) or r["error"] == "duplicate"


def test_resume_measures_nothing_twice(tuned_log, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With the budget spent, a rerun finds every default in the log and measures nothing."""
    before = tuned_log.read_text()
    calls = []
    real = LocalMeasurer.measure
    monkeypatch.setattr(LocalMeasurer, "measure",
                        lambda self, *a: calls.append(a) or real(self, *a))
    tune_model(TINY, "host", log=tuned_log, budget_s=0.001)
    assert calls == [] and tuned_log.read_text() == before


def test_torn_last_line_is_skipped(tuned_log, tmp_path) -> None:  # type: ignore[no-untyped-def]
    torn = tmp_path / "torn.jsonl"
    torn.write_text(tuned_log.read_text() + '{"workload": "ab')
    assert len(read_log(torn)) == len(read_log(tuned_log))


def test_compile_applies_the_best(tuned_log, host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    best = best_knobs(tuned_log, host)
    compiled = deepc.compile(TINY, host, tuned=best)
    tuned = {r.workload.key for r in compiled.records if r.source == "tuned"}
    assert tuned == set(best)
    assert_matches_ort(compiled, tmp_path)


def test_cli_compile_with_tuning_log(tuned_log, host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tarfile

    from click.testing import CliRunner

    from deepc.cli import main

    out = tmp_path / "m.tar"
    result = CliRunner().invoke(main, ["compile", str(TINY), "-o", str(out),
                                       "--tuning-log", str(tuned_log)])
    assert result.exit_code == 0, result.output
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    sources = {s["source"] for s in manifest["schedules"]}
    assert sources <= {"tuned", "default"}
    assert ("tuned" in sources) == bool(best_knobs(tuned_log, host))
    applied = {t["workload"]: t["knobs"] for t in manifest["tuned"]}
    assert applied == best_knobs(tuned_log, host)


@pytest.mark.filterwarnings("ignore:input 'input'")
def test_records_of_another_batch_match_no_kernel(host) -> None:  # type: ignore[no-untyped-def]
    """A workload's key holds its shapes: knobs for every batch-1 kernel apply at batch 1
    and to no kernel at batch 2."""
    one = deepc.compile(TINY, host)
    knobs = {r.workload.key: dict(r.knobs) for r in one.records}
    again = deepc.compile(TINY, host, tuned=knobs)
    assert {r.source for r in again.records} == {"tuned"}
    two = deepc.compile(TINY, host, tuned=knobs, input_shapes={"input": (2, 3, 32, 32)})
    assert {r.source for r in two.records} == {"default"}


def test_best_knobs_by_thread_count(tmp_path, host) -> None:  # type: ignore[no-untyped-def]
    """A log of 1- and 2-thread records: each count applies its own winner; without one named
    it is a one-line error asking for it."""
    from deepc.errors import InputError

    fp = host.fingerprint()
    rows = [TuneRecord("w", fp, "k", 0, {"v": 8}, 1.0, threads=1),
            TuneRecord("w", fp, "k", 1, {"v": 16}, 0.5, threads=1),
            TuneRecord("w", fp, "k", 2, {"v": 4}, 2.0, threads=1),
            TuneRecord("w", fp, "k", 0, {"v": 8}, 1.0, threads=2),
            TuneRecord("w", fp, "k", 2, {"v": 4}, 0.4, threads=2),
            TuneRecord("w", fp, "k", 1, {"v": 16}, 3.0, threads=2)]
    log = tmp_path / "threads.jsonl"
    log.write_text("".join(r.to_json() + "\n" for r in rows))
    assert best_knobs(log, host, 1) == {"w": {"v": 16}}
    assert best_knobs(log, host, 2) == {"w": {"v": 4}}
    assert best_knobs(log, host, 3) == {}
    with pytest.raises(InputError, match="--tuning-threads"):
        best_knobs(log, host)


def test_wrong_results_are_errors_never_applied(tmp_path, monkeypatch, host) -> None:  # type: ignore[no-untyped-def]
    """Every candidate but the default computes garbage: all are logged as errors."""
    real = LocalMeasurer.measure

    def wrong(self, task, knobs, steps):  # type: ignore[no-untyped-def]
        m = real(self, task, knobs, steps)
        if steps != task.default.to_list() and m.outputs is not None:
            return Measurement(m.cost * 0.5, None, [o + 1 for o in m.outputs])
        return m

    monkeypatch.setattr(LocalMeasurer, "measure", wrong)
    log = tmp_path / "wrong.jsonl"
    measured: list[dict] = []
    for _ in range(4):  # a loaded machine may time no candidate in 8 s: the log resumes
        tune_model(TINY, "host", log=log, budget_s=8)  # 85% searches: the rest checks the model
        rows = [r for r in _lines(log) if r["candidate"] != 0 and r["error"] != "duplicate"]
        measured = [r for r in rows if not r["error"].startswith("rejected")]
        if measured:
            break
    assert measured and all(r["error"].startswith("wrong result") for r in measured)
    assert all(r["cost"] is None for r in rows)
    assert best_knobs(log, host) == {}


def test_rejected_knobs_are_errors(tmp_path, monkeypatch, host) -> None:  # type: ignore[no-untyped-def]
    """A candidate the scheduler rejects is logged as such, not measured, not applied."""
    monkeypatch.setattr(tuner, "sample", lambda default, axes, rng: {**default, "bogus": 1})
    monkeypatch.setattr(Task, "seeds", lambda self: [])  # every candidate a sample
    log = tmp_path / "rejected.jsonl"
    tune_model(TINY, "host", log=log, budget_s=60)  # ends when each task's one candidate is spent
    rows = [r for r in _lines(log) if r["candidate"] != 0]
    assert rows and all(r["error"].startswith("rejected") for r in rows)
    assert best_knobs(log, host) == {}


def _record(candidate: int, knobs: dict, cost: float | None, error: str | None = None
            ) -> TuneRecord:
    return TuneRecord("w", "t", "k", candidate, knobs, cost, error)


def test_default_wins_ties_and_means_decide() -> None:
    tie = [_record(0, {"v": 8}, 1.0), _record(1, {"v": 16}, 1.0)]
    assert best_records(tie, "t") == {}
    lucky = [_record(0, {"v": 8}, 1.0), _record(1, {"v": 16}, 0.5), _record(0, {"v": 8}, 1.0),
             _record(1, {"v": 16}, 1.6), _record(0, {"v": 8}, 5.0), _record(1, {"v": 16}, 1.1)]
    assert best_records(lucky, "t") == {}  # medians 1.1 vs 1.0: one busy spell decides nothing
    better = [_record(0, {"v": 8}, 1.0), _record(1, {"v": 16}, 0.8),
              _record(2, {"v": 4}, 0.7, "wrong result")]
    best = best_records(better, "t")["w"]
    assert best.knobs == {"v": 16} and np.isclose(best.cost, 0.8)


def test_a_saving_within_the_noise_is_not_applied() -> None:
    """1% on a kernel timed alone is within what a shared machine and the model's caches
    move it by: the default stays; 3% is applied."""
    near = [_record(0, {"v": 8}, 1.0), replace(_record(1, {"v": 16}, 0.99), control=1.0)]
    assert best_records(near, "t") == {}
    clear = [*near, replace(_record(2, {"v": 4}, 0.97), control=1.0)]
    assert best_records(clear, "t")["w"].knobs == {"v": 4}


def test_candidates_timed_beside_the_default_are_judged_by_ratio() -> None:
    """A busy spell slowed both the candidate and its control: the ratio still says it is
    faster; a candidate whose raw time looks faster, but not beside its control, is not."""
    slowed = [_record(0, {"v": 8}, 1.0), replace(_record(1, {"v": 16}, 1.2), control=1.5)]
    best = best_records(slowed, "t")["w"]
    assert best.knobs == {"v": 16} and np.isclose(best.cost, 0.8)
    lucky = [_record(0, {"v": 8}, 1.0), replace(_record(1, {"v": 16}, 0.9), control=0.8)]
    assert best_records(lucky, "t") == {}


def test_a_ratio_whose_control_strayed_from_the_default_is_not_evidence() -> None:
    """Twice the control alone ran 3x slower than the default ever does (the candidate at
    its usual time): those ratios are dropped, and the one sane pairing says slower."""
    records = [_record(0, {"v": 8}, 1.0), _record(0, {"v": 8}, 1.0),
               replace(_record(1, {"v": 16}, 1.05), control=3.0),
               replace(_record(1, {"v": 16}, 1.1), control=2.8),
               replace(_record(1, {"v": 16}, 1.04), control=1.0)]
    assert best_records(records, "t") == {}
    records.append(replace(_record(2, {"v": 4}, 0.9), control=1.0))
    assert best_records(records, "t")["w"].knobs == {"v": 4}


def test_kernel_timed_in_turns_with_its_control(tiny_kernels, host) -> None:  # type: ignore[no-untyped-def]
    """The worker times a candidate and the default in turns: the default against itself
    is no control; another schedule gets the default's time and a ratio beside it."""
    from deepc.tune.tasks import extract_tasks

    task = max(extract_tasks(tiny_kernels, host), key=lambda t: len(t.default.knobs))
    measurer = LocalMeasurer(host, min_time=0.01)
    try:
        same = measurer.measure(task, dict(task.default.knobs), task.default.to_list())
        assert same.cost and same.control is None and same.ratio is None
        knobs = {**task.default.knobs, **{k: 1 for k in task.default.knobs
                                          if k.endswith("vector")}}
        other = measurer.measure(task, knobs, task.schedule(knobs).to_list())
        assert other.cost and other.control and other.ratio and other.ratio > 0
    finally:
        measurer.close()


def test_cli_asks_which_thread_count(tmp_path, host) -> None:  # type: ignore[no-untyped-def]
    """compile --tuning-log with a log of two thread counts: a one-line error naming
    --tuning-threads, and no bundle; with it, the bundle is written."""
    from click.testing import CliRunner

    from deepc.cli import main

    fp = host.fingerprint()
    log = tmp_path / "two.jsonl"
    log.write_text("".join(TuneRecord("w", fp, "k", 0, {}, 1.0, threads=n).to_json() + "\n"
                           for n in (1, 2)))
    out = tmp_path / "m.tar"
    args = ["compile", str(TINY), "-o", str(out), "--tuning-log", str(log)]
    asked = CliRunner().invoke(main, args)
    assert asked.exit_code != 0 and "--tuning-threads" in asked.output and not out.exists()
    assert len(asked.output.strip().splitlines()) == 1
    chosen = CliRunner().invoke(main, [*args, "--tuning-threads", "2"])
    assert chosen.exit_code == 0, chosen.output
    assert out.exists()


def test_resume_skips_only_candidates_timed_with_the_same_threads(tmp_path: Path) -> None:
    """A log holding a candidate timed on 2 threads does not count it as tried on 1."""
    from deepc.tune.log import TuneLog, knobs_key

    path = tmp_path / "log.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in (
        TuneRecord("w", "fp", "k", 0, {"v": 8}, 1.0, threads=2),
        TuneRecord("w", "fp", "k", 1, {"v": 16}, 0.5, threads=2),
        TuneRecord("w", "fp", "k", 1, {"v": 4}, 0.7, threads=1))))
    assert set(TuneLog(path, "fp", threads=1).tried("w")) == {knobs_key({"v": 4})}
    assert set(TuneLog(path, "fp", threads=2).tried("w")) == {knobs_key({"v": 8}),
                                                             knobs_key({"v": 16})}

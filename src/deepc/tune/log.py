"""Tuning logs: one JSON line per measured (or rejected) candidate, appended as it comes, read
back to resume a run, to train the cost model and to pick each workload's best knobs."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from deepc.errors import InputError

# a control whose time strays further than this factor from the default's usual one was
# disturbed on its own (on a loaded 2-core machine: the default's batches 2.8x slower beside
# a candidate for minutes while the candidate's were not, twice in a row), so its ratio says
# nothing about the candidate (it made a 4% slower squeezenet conv look 2.6x faster)
CONTROL_SPREAD = 1.5
# what a candidate must save on the default to be applied: a kernel timed alone on a shared
# machine is judged to a percent or two, and runs inside the model in other caches, so a
# smaller saving is as likely noise that slows the model (lstm's 1% record of a matmul's
# rows: tuned/untuned 0.96 in one comparison, 1.03 in the next)
MIN_GAIN = 0.02


def paired_ratio(cost: float | None, control: float | None,
                 default_cost: float | None) -> float | None:
    """cost / control, when both were timed and the control's time is within
    CONTROL_SPREAD of the default's usual `default_cost`; else None."""
    if not (cost and control and default_cost):
        return None
    if not 1 / CONTROL_SPREAD <= control / default_cost <= CONTROL_SPREAD:
        return None
    return cost / control


def knobs_key(knobs: Mapping[str, Any]) -> str:
    """One candidate's identity within a workload."""
    return json.dumps(dict(knobs), sort_keys=True)


@dataclass(frozen=True)
class TuneRecord:
    workload: str  # Workload.key
    target: str  # the target's fingerprint
    kernel: str
    candidate: int  # 0: the default schedule
    knobs: dict[str, Any]
    cost: float | None  # seconds per call; None when the candidate failed
    error: str | None = None
    features: list[float] = field(default_factory=list)  # the cost model's inputs
    threads: int = 1  # runtime threads it was timed with (knobs such as `threads` depend on it)
    control: float | None = None  # the default's seconds per call, timed in turns with it

    @property
    def ratio(self) -> float | None:
        """Its time over the default's timed beside it (None where it was not)."""
        return self.cost / self.control if self.cost and self.control else None

    def ratio_against(self, default_cost: float) -> float | None:
        """The ratio, where the control ran as the default does (its time within
        CONTROL_SPREAD of `default_cost`); None otherwise."""
        return paired_ratio(self.cost, self.control, default_cost)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def read_log(path: str | os.PathLike[str]) -> list[TuneRecord]:
    """Every record of a log (none when the file does not exist); a torn last line (a run
    killed while writing) is skipped."""
    p = Path(path)
    if not p.exists():
        return []
    records = []
    lines = p.read_text().splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(TuneRecord(**json.loads(line)))
        except (ValueError, TypeError) as e:
            if n < len(lines):
                raise InputError(f"{path}:{n}: not a deepc tuning record ({e}) — pass a log"
                                 " written by deepc tune") from None
    return records


class TuneLog:
    """An append-only log file and what it already holds for one target."""

    def __init__(self, path: str | os.PathLike[str], fingerprint: str, threads: int = 1):
        self.path = Path(path)
        self.fingerprint, self.threads = fingerprint, threads
        self.records = read_log(self.path)

    def __iter__(self) -> Iterator[TuneRecord]:
        return iter(r for r in self.records if r.target == self.fingerprint)

    def tried(self, workload: str) -> dict[str, TuneRecord]:
        """This workload's candidates already in the log at this run's thread count, by
        knobs_key (a time taken with other threads says nothing of this one's)."""
        return {knobs_key(r.knobs): r for r in self
                if r.workload == workload and r.threads == self.threads}

    def append(self, record: TuneRecord) -> None:
        record = replace(record, threads=self.threads)
        self.records.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(record.to_json() + "\n")
            f.flush()


@dataclass(frozen=True)
class Best:
    knobs: dict[str, Any]
    cost: float  # median of the candidate's measurements
    default_cost: float  # median of the default's


def best_records(records: list[TuneRecord], fingerprint: str,
                 threads: int | None = None) -> dict[str, Best]:
    """Per workload, the candidate that beats the default (candidate 0) by MIN_GAIN or more;
    workloads whose default stayed best, or was never measured, are left out, and so is any
    candidate that failed once (an error, a wrong result). A candidate timed in turns with
    the default (a control) is judged by the median of its ratios to it, so load that comes
    and goes between measurements decides nothing (a ratio whose control strayed from the
    default's usual time is left out: paired_ratio); others by median time against the
    default's. With `threads`, only records timed with that many runtime threads count."""
    costs: dict[tuple[str, str], list[float]] = {}
    paired: dict[tuple[str, str], list[TuneRecord]] = {}
    knobs: dict[tuple[str, str], dict[str, Any]] = {}
    failed: set[tuple[str, str]] = set()
    default: dict[str, str] = {}
    for r in records:
        if r.target != fingerprint or (threads is not None and r.threads != threads):
            continue
        key = (r.workload, knobs_key(r.knobs))
        if r.error or r.cost is None:
            failed.add(key)
            continue
        costs.setdefault(key, []).append(r.cost)
        if r.ratio is not None:
            paired.setdefault(key, []).append(r)
        knobs[key] = r.knobs
        if r.candidate == 0:
            default[r.workload] = key[1]
    median = {k: statistics.median(v) for k, v in costs.items() if k not in failed}
    best: dict[str, Best] = {}
    for (workload, kk), cost in median.items():
        base = median.get((workload, default.get(workload, "")))
        if base is None or kk == default[workload]:
            continue
        ratios = [q for r in paired.get((workload, kk), [])
                  if (q := r.ratio_against(base)) is not None]
        if ratios:  # against the default timed beside it
            cost = base * statistics.median(ratios)
        if cost > base * (1 - MIN_GAIN):
            continue
        if workload not in best or cost < best[workload].cost:
            best[workload] = Best(dict(knobs[(workload, kk)]), cost, base)
    return best


def best_knobs(path: str | os.PathLike[str], target: Any,
               threads: int | None = None) -> dict[str, dict[str, Any]]:
    """What `deepc.compile(tuned=...)` takes: the best knobs per workload of a log, for the
    target (a Target: records of other hardware fingerprints are not used) and the runtime
    thread count the model will run with (a 1-thread winner may serialise a loop that 2
    threads share). `threads` None takes the log's one thread count; a log of several asks
    for one. Batch needs no filter: a workload's key holds its buffers' shapes, so records
    tuned at another batch size match no kernel."""
    if not Path(path).exists():
        raise InputError(f"tuning log {path} does not exist — run deepc tune first")
    records = [r for r in read_log(path) if r.target == target.fingerprint()]
    counts = sorted({r.threads for r in records})
    if threads is None and len(counts) > 1:
        raise InputError(f"tuning log {path} holds records timed with {counts} threads — pass"
                         " --tuning-threads N to say which the bundle will run with")
    best = best_records(records, target.fingerprint(), threads)
    return {k: b.knobs for k, b in best.items()}

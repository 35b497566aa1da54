"""A tuning log's best records checked on the whole model: the bundle with them timed in turns
with the untuned one, and records whose kernels do not pay inside the model logged as errors
(so they are never applied) until the tuned model is the faster.

Each candidate was timed alone, its kernel called again and again on the same buffers; in the
model it runs between other kernels, which have moved its operands out of the caches and left
their own. Some schedules win only alone: squeezenet's classifier conv with its rows swept
inside the reduction, unrolled by 16, ran 8% faster alone and made the model 4% slower.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from deepc.tune.log import TuneLog, TuneRecord, best_records

Build = Callable[[dict[str, dict[str, Any]]], Callable[[], Any]]  # knobs per workload -> run
TIMED_S = 1.5  # seconds of runs per comparison, spread over its bundles in turns
MIN_ROUNDS, MAX_ROUNDS = 12, 200
SETTLE_S = 0.002  # after each run: thread pools that spin a while would slow the next
PERCENTILE = 10
# what counts as faster: two timings of the same bundle on a loaded 2-core machine differ by
# up to about half of this, and a model that tuning does not clearly speed up is better left
# untuned (the same bundle: never slower)
MIN_GAIN = 0.01  # of a bundle's run times: the run that nothing else on the machine slowed


@dataclass
class ModelCheck:
    untuned_s: float  # the untuned bundle's run time (PERCENTILE of its runs)
    tuned_s: float  # the tuned one's, with what is left applied
    dropped: list[str]  # workloads whose best records were logged as slower in the model
    rows: int = 0  # error records appended to the log for them

    def to_dict(self) -> dict[str, Any]:
        return {"untuned_s": self.untuned_s, "tuned_s": self.tuned_s, "dropped": self.dropped,
                "rows": self.rows}


def check_in_model(build: Build, log: TuneLog, deadline: float,
                   calls: Mapping[str, int] | None = None, tries: int = 4) -> ModelCheck | None:
    """Time the model untuned and tuned; while the tuned one is not faster by MIN_GAIN, drop
    the record that claims the largest saving (its kernel's time saved, times its `calls`
    per run) if the model runs faster without it (up to `tries`, until `deadline`, a
    time.perf_counter() value); if it is still not faster, drop them all. None when the
    log applies nothing."""
    best = best_records(list(log), log.fingerprint, log.threads)
    if not best:
        return None
    untuned = build({})
    applied = {w: b.knobs for w, b in best.items()}
    tuned = build(applied)
    base, now = _timed([untuned, tuned])
    dropped: list[str] = []
    rows = 0
    def saving(w: str) -> float:
        return (best[w].default_cost - best[w].cost) * (calls or {}).get(w, 1)

    for workload in sorted(best, key=saving, reverse=True)[:tries]:
        if now < base * (1 - MIN_GAIN) or time.perf_counter() >= deadline:
            break
        rest = {w: k for w, k in applied.items() if w != workload}
        without = build(rest)
        base, now, alone = _timed([untuned, tuned, without])
        if alone < now:
            rows += _reject(log, workload, f"slower in the model: {alone * 1e3:.3f} ms"
                                           f" without it, {now * 1e3:.3f} ms with it")
            dropped.append(workload)
            applied, tuned, now = rest, without, alone
    if now >= base * (1 - MIN_GAIN):
        for workload in applied:
            rows += _reject(log, workload, f"the tuned model was not faster: {now * 1e3:.3f}"
                                           f" ms, untuned {base * 1e3:.3f} ms")
        dropped += list(applied)
        now = base
    return ModelCheck(base, now, dropped, rows)


def _reject(log: TuneLog, workload: str, why: str) -> int:
    """Log every candidate of `workload` that would now be applied as an error, so the
    workload keeps its default schedule (a next-best candidate was no more checked); the
    number of records appended."""
    rows = 0
    while (best := best_records(list(log), log.fingerprint, log.threads).get(workload)):
        old = next(r for r in log if r.workload == workload and r.knobs == best.knobs)
        log.append(TuneRecord(workload, log.fingerprint, old.kernel, old.candidate, best.knobs,
                              None, why))
        rows += 1
    return rows


def _timed(runs: list[Callable[[], Any]]) -> list[float]:
    """Each run's PERCENTILE time over rounds in which the order rotates."""
    for run in runs:
        run()
    start = time.perf_counter()
    runs[0]()
    one = max(time.perf_counter() - start, 1e-6)
    rounds = int(min(max(TIMED_S / (one * len(runs)), MIN_ROUNDS), MAX_ROUNDS))
    times: list[list[float]] = [[] for _ in runs]
    for r in range(rounds):
        for k in [(r + j) % len(runs) for j in range(len(runs))]:
            start = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - start)
            time.sleep(SETTLE_S)
    return [_low(t) for t in times]


def _low(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) * PERCENTILE // 100, len(ordered) - 1)] \
        if len(ordered) >= 10 else statistics.median(ordered)

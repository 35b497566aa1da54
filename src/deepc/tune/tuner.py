"""The search: every task's default measured first (the profile that weights the tasks), then
the budget spread over tasks by their share of the model's time (a task that stops improving
hands the rest of its share on; what is left goes round again), candidates proposed from the
knob space and ranked by the cost model, each measured, checked and logged as it comes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from deepc.errors import ScheduleError
from deepc.schedule.schedule import Schedule
from deepc.tune.cost_model import CostModel
from deepc.tune.log import TuneLog, TuneRecord, best_records, knobs_key, paired_ratio
from deepc.tune.measure import Measurement, check_outputs
from deepc.tune.space import sample

POOL = 48  # candidates ranked by the cost model per trial
EXPLORE = 0.25  # share of trials that take a random candidate rather than the best predicted
CONFIRM_ROUNDS = 2  # extra timings of the default and the best at a task's end
MIN_SHARE = 0.05  # seconds: a share of the budget too short to time one candidate in
STALE_TRIALS = 96  # candidates measured without a new best: the task gives its time back
# proposals in a row that were only other spellings of measured candidates (each costs a
# proposal, no measurement): the task's space is as good as spent
STALE_DUPLICATES = 192


class Task(Protocol):
    """What the search needs of a task (tune.tasks.Task on CPUs, tune.gpu_tasks.GpuTask)."""

    key: str
    kernel: str
    ops: tuple[str, ...]
    count: int
    default: Schedule
    features: list[float]
    tolerance: float

    def schedule(self, knobs: dict[str, Any]) -> Schedule: ...

    def axes(self) -> dict[str, list[Any]]: ...

    def fits(self, knobs: dict[str, Any]) -> bool: ...

    def canonical(self, knobs: dict[str, Any],
                  base: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def knob_features(self, knobs: dict[str, Any]) -> list[float]: ...

    def seeds(self) -> list[dict[str, Any]]: ...


class Measurer(Protocol):
    def measure(self, task: Task, knobs: dict[str, Any],
                steps: list[list[Any]]) -> Measurement: ...

    def close(self) -> None: ...


@dataclass
class TaskResult:
    key: str
    kernel: str
    ops: list[str]
    count: int
    default_cost: float | None = None
    best_cost: float | None = None
    best_knobs: dict[str, Any] = field(default_factory=dict)
    trials: int = 0  # candidates tried in this run, one log row each (the default included)
    errors: int = 0  # of those, failed or rejected
    duplicates: int = 0  # of those, other spellings of measured ones (not measured again)

    @property
    def weight(self) -> float:
        return self.count * (self.default_cost or 0.0)


@dataclass
class TuneSummary:
    tasks: list[TaskResult]
    elapsed: float
    log: str
    model_check: dict[str, Any] | None = None  # tune.model_check's verdict, where it ran

    @property
    def trials(self) -> int:
        return sum(t.trials for t in self.tasks)

    @property
    def speedup(self) -> float:
        """The model's estimated speed-up: its kernels' default time over their best."""
        before = sum(t.weight for t in self.tasks)
        after = sum(t.count * (t.best_cost or t.default_cost or 0.0) for t in self.tasks)
        return before / after if after > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"log": self.log, "elapsed_s": self.elapsed, "trials": self.trials,
                "errors": sum(t.errors for t in self.tasks), "speedup": self.speedup,
                "model_check": self.model_check, "tasks": [asdict(t) for t in self.tasks]}


Progress = Callable[[TuneSummary, int], None]  # the summary so far, the current task


def tune(tasks: list[Task], measurer: Measurer, log: TuneLog, budget_s: float,
         progress: Progress | None = None, seed: int = 0) -> TuneSummary:
    """Search each task's knobs for `budget_s` seconds in all, appending to `log`; candidates
    already in the log are not measured again."""
    start = time.perf_counter()
    rng = random.Random(seed)
    results = [TaskResult(t.key, t.kernel, list(t.ops), t.count) for t in tasks]
    summary = TuneSummary(results, 0.0, str(log.path))
    model = _seeded_model(log, seed)
    search = _Search(measurer, log, model, rng)

    def report(k: int) -> None:
        summary.elapsed = time.perf_counter() - start
        if progress:
            progress(summary, k)

    for k, (task, res) in enumerate(zip(tasks, results)):  # the profile: defaults first
        search.default(task, res)
        report(k)
    order = sorted(range(len(tasks)), key=lambda k: -results[k].weight)
    # passes over the tasks until the budget is spent: what tasks that stopped improving
    # handed on and the last task did not use goes round again, by the same weights
    while _one_pass(tasks, results, order, search, report, start + budget_s):
        pass
    summary.elapsed = time.perf_counter() - start
    return summary


def _one_pass(tasks: list[Task], results: list[TaskResult], order: list[int],
              search: _Search, report: Callable[[int], None], end: float) -> bool:
    """Each task in `order` searched for its share of the time left until `end`; whether
    any candidate was proposed (False: the spaces are spent, or the time is)."""
    left_weight = sum(results[k].weight for k in order)
    stepped = False
    for k in order:
        if left_weight <= 0:
            break
        share = (end - time.perf_counter()) * results[k].weight / left_weight
        left_weight -= results[k].weight
        if share < MIN_SHARE:
            continue
        deadline = time.perf_counter() + share
        res = results[k]
        stale = _Staleness(res.best_cost)
        while time.perf_counter() < deadline:
            duplicates = res.duplicates
            if not search.step(tasks[k], res):
                break
            stepped = True
            report(k)
            if stale.ended(res.best_cost, res.duplicates > duplicates):
                break  # the rest of its share goes to the tasks after it
        search.confirm(tasks[k], res)
        report(k)
    return stepped and end - time.perf_counter() >= MIN_SHARE


@dataclass
class _Staleness:
    """Whether a task's turn should end early: STALE_TRIALS candidates tried since its last
    new best, or STALE_DUPLICATES proposals in a row that were only respellings. A
    duplicate is not a trial without a new best: a space whose knobs have many spellings
    would otherwise end its turn after a few real candidates."""

    best: float | None
    tried: int = 0
    repeats: int = 0

    def ended(self, best: float | None, duplicate: bool) -> bool:
        if best != self.best:
            self.best, self.tried, self.repeats = best, 0, 0
        elif duplicate:
            self.repeats += 1
        else:
            self.tried, self.repeats = self.tried + 1, 0
        return self.tried >= STALE_TRIALS or self.repeats >= STALE_DUPLICATES


def _schedules(task: Task, knobs: dict[str, Any]) -> bool:
    """Whether the scheduler takes `knobs` as the search would propose them."""
    try:
        task.schedule(task.canonical(knobs))
    except ScheduleError:
        return False
    return True


def _seeded_model(log: TuneLog, seed: int) -> CostModel:
    """A cost model trained on the log's earlier records of this target (transfer)."""
    model = CostModel(seed)
    defaults = {r.workload: r.cost for r in log if r.candidate == 0 and r.cost}
    for r in log:
        if r.cost and r.workload in defaults:
            base = defaults[r.workload]
            ratio = r.ratio_against(base)
            cost = base * ratio if ratio is not None else r.cost
            model.add(r.features, cost, base)  # type: ignore[arg-type]
    return model


class _Search:
    def __init__(self, measurer: Measurer, log: TuneLog, model: CostModel,
                 rng: random.Random):
        self.measurer = measurer
        self.log, self.model, self.rng = log, model, rng
        self.reference: dict[str, list[np.ndarray]] = {}
        self._axes: dict[str, dict[str, list[Any]]] = {}
        # each task's register-filling tiles, measured before anything random
        self._seeds: dict[str, list[dict[str, Any]]] = {}

    def axes(self, task: Task) -> dict[str, list[Any]]:
        """The task's knob axes, less the values that the scheduler rejects on their own
        (combinations of the rest may still be rejected, and are logged as such)."""
        if task.key not in self._axes:
            default = dict(task.default.knobs)
            axes = {}
            for name, values in task.axes().items():
                ok = [v for v in values if v == default.get(name)
                      or _schedules(task, {**default, name: v})]
                if len(ok) > 1:
                    axes[name] = ok
            self._axes[task.key] = axes
        return self._axes[task.key]

    def features(self, task: Task, knobs: dict[str, Any]) -> list[float]:
        return task.features + task.knob_features(knobs)

    def default(self, task: Task, res: TaskResult) -> None:
        knobs = dict(task.default.knobs)
        res.best_knobs = knobs
        # the default's own record: a candidate that respelt the default logs a duplicate
        # of it, which is no reason to measure the default again
        old = next((r for r in self.log if r.workload == task.key and r.candidate == 0
                    and knobs_key(r.knobs) == knobs_key(knobs)), None)
        if old is not None:
            res.default_cost = old.cost
        else:
            m = self._run(task, knobs, task.default.to_list(), res)
            if m.outputs is not None:
                self.reference[task.key] = m.outputs
            self._record(task, 0, knobs, m, res)
            res.default_cost = m.cost
        best = best_records(list(self.log), self.log.fingerprint).get(task.key)
        if best is not None:  # earlier runs found a better one
            res.best_knobs, res.best_cost, res.default_cost = (best.knobs, best.cost,
                                                               best.default_cost)

    def step(self, task: Task, res: TaskResult) -> bool:
        """Measure one new candidate; False when the space holds no untried one."""
        if res.default_cost is None:
            return False
        tried = self.log.tried(task.key)
        if task.key not in self._seeds:
            self._seeds[task.key] = task.seeds()
        seeds = [k for k in self._seeds[task.key] if knobs_key(k) not in tried]
        knobs = seeds[0] if seeds else self._propose(task, res, tried)
        if knobs is None:
            return False
        index = len(tried) + 1
        try:
            sch = task.schedule(knobs)
        except ScheduleError as e:
            self._record(task, index, knobs, Measurement(None, f"rejected: {e}"), res)
            return True
        canonical = dict(sch.knobs)
        if knobs_key(canonical) in tried:  # another spelling of a measured candidate
            old = tried[knobs_key(canonical)]
            self.log.append(TuneRecord(task.key, self.log.fingerprint, task.kernel, index,
                                       knobs, old.cost, old.error or "duplicate"))
            res.trials += 1  # a row of the log like any other (its cost is the original's)
            res.duplicates += 1
            return True
        m = self._run(task, canonical, sch.to_list(), res)
        self._record(task, index, canonical, m, res)
        return True

    def _propose(self, task: Task, res: TaskResult,
                 tried: dict[str, TuneRecord]) -> dict[str, Any] | None:
        """The cost model's pick (or a random one) of untried samples of the space, half of
        them changes of the best so far where that is not the default (a tile that pays
        wants its unrolling and loop order tried too); None when the space holds no
        untried candidate."""
        axes = self.axes(task)
        if not axes:
            return None
        default = dict(task.default.knobs)
        bases = [default, dict(res.best_knobs)] if res.best_knobs != default else [default]
        pool: dict[str, dict[str, Any]] = {}
        for i in range(POOL * 4):
            base = bases[i % len(bases)]
            knobs = sample(base, axes, self.rng)
            if not task.fits(knobs):
                continue
            knobs = task.canonical(knobs, base)
            if knobs_key(knobs) not in tried:
                pool[knobs_key(knobs)] = knobs
            if len(pool) >= POOL:
                break
        return self._choose(task, list(pool.values())) if pool else None

    def confirm(self, task: Task, res: TaskResult) -> None:
        """Time the default and the best candidate again, in turns (a noisy machine flatters
        some lucky single measurement): what is applied is the best by median time."""
        default = dict(task.default.knobs)
        if (res.default_cost is None or res.trials == 0
                or knobs_key(res.best_knobs) == knobs_key(default)):
            return
        old = self.log.tried(task.key)[knobs_key(res.best_knobs)]
        sch = task.schedule(res.best_knobs)
        pair = ((default, task.default.to_list(), 0),
                (res.best_knobs, sch.to_list(), old.candidate))
        for _ in range(CONFIRM_ROUNDS):  # alternating, so a busy spell hits both
            for knobs, steps, index in pair:
                self._record(task, index, knobs, self._run(task, knobs, steps, res), res)
        best = best_records(list(self.log), self.log.fingerprint).get(task.key)
        res.best_knobs = best.knobs if best else default
        res.best_cost = best.cost if best else None
        if best:  # both medians of the same rounds: the best is below the default's by rule
            res.default_cost = best.default_cost

    def _choose(self, task: Task, pool: list[dict[str, Any]]) -> dict[str, Any]:
        predicted = self.model.predict([self.features(task, k) for k in pool])
        if predicted is None or self.rng.random() < EXPLORE:
            return self.rng.choice(pool)
        return pool[int(np.argmin(predicted))]

    def _run(self, task: Task, knobs: dict[str, Any], steps: list[list[Any]],
             res: TaskResult) -> Measurement:
        try:
            m = self.measurer.measure(task, knobs, steps)
        except ScheduleError as e:  # knobs that fail once applied: a rejected row, go on
            return Measurement(None, f"rejected: {e}")
        if m.error is None and m.outputs is not None and task.key in self.reference:
            wrong = check_outputs(m.outputs, self.reference[task.key], task.tolerance)
            if wrong:
                return Measurement(None, wrong)
        elif m.error is None and m.outputs is not None and steps != task.default.to_list():
            # resumed: the default's outputs were not kept; measure it again (not logged)
            ref = self.measurer.measure(task, dict(task.default.knobs), task.default.to_list())
            if ref.outputs is None:
                return Measurement(None, "the default schedule failed: nothing to check against")
            self.reference[task.key] = ref.outputs
            return self._run(task, knobs, steps, res)
        return m

    def _record(self, task: Task, index: int, knobs: dict[str, Any], m: Measurement,
                res: TaskResult) -> None:
        features = self.features(task, knobs)
        self.log.append(TuneRecord(task.key, self.log.fingerprint, task.kernel, index, knobs,
                                   m.cost, m.error, features, control=m.control))
        res.trials += 1
        if m.error or m.cost is None:
            res.errors += 1
            return
        if res.default_cost:
            # timed beside the default: its ratio, on the default's first time, ranks it
            ratio = paired_ratio(m.cost, m.control, res.default_cost)
            cost = res.default_cost * ratio if ratio is not None else m.cost
            self.model.add(features, cost, res.default_cost)
            if cost < (res.best_cost or res.default_cost):
                res.best_cost, res.best_knobs = cost, dict(knobs)
        elif index == 0:
            res.best_cost = m.cost

"""`deepc.tune_model`: a model's tuning tasks searched on the target it will run on — kernels
timed natively on this machine, or whole bundles with the candidate applied on a board
through RPC (`remote`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import uses_tf32
from deepc.compiler.pipeline import compile as compile_model
from deepc.compiler.pipeline import load_graph, lower_model
from deepc.errors import DeepcError, ScheduleError, TargetError
from deepc.target import load_target
from deepc.tune.gpu_tasks import extract_gpu_tasks
from deepc.tune.log import TuneLog
from deepc.tune.measure import LocalMeasurer, Measurement
from deepc.tune.measure_cuda import CudaMeasurer
from deepc.tune.model_check import check_in_model
from deepc.tune.tasks import Task, extract_tasks
from deepc.tune.tuner import Progress, TuneSummary, tune

MODEL_CHECK_SHARE = 0.15  # of the budget, left to time the winners in the whole model


class RemoteMeasurer:
    """Times the whole model on a board with one candidate applied (the other kernels keep
    their defaults, so candidates of a task compare on the same baseline); the outputs are
    the model's, checked against the default bundle's on the same seeded inputs."""

    def __init__(self, graph: Any, target: Any, remote: Any, threads: int = 1, runs: int = 10,
                 opt_level: int = 2):
        self.graph, self.target, self.remote = graph, target, remote
        self.threads, self.runs, self.opt_level = threads, runs, opt_level
        self._dir = tempfile.TemporaryDirectory(prefix="deepc-tune-")
        self._default: Measurement | None = None

    def measure(self, task: Task, knobs: dict[str, Any], steps: list[list[Any]]) -> Measurement:
        """Every task's default is the same bundle: it is built and timed once (so tasks
        weigh the same on a board: per-kernel times are not taken there)."""
        if steps == task.default.to_list():
            if self._default is None or self._default.error:
                self._default = self._measure(task, knobs)
            return self._default
        return self._measure(task, knobs)

    def _measure(self, task: Task, knobs: dict[str, Any]) -> Measurement:
        from deepc.runtime.bundle import read_bundle
        from deepc.runtime.inputs import bundle_inputs

        try:
            compiled = compile_model(self.graph, self.target, opt_level=self.opt_level,
                                     tuned={task.key: knobs})
            bundle = Path(self._dir.name) / f"{task.key}.tar"
            compiled.save(bundle)
            feeds = bundle_inputs(read_bundle(bundle), 0)
            with self.remote.client(self.target.name) as client:
                outputs = client.run(bundle, feeds, self.threads)
                times = client.time(bundle, feeds, self.runs, 1, self.threads)
        except ScheduleError:
            raise  # the search logs the candidate as rejected
        except DeepcError as e:
            return Measurement(None, f"failed: {e}".splitlines()[0])
        cost = float(np.median(times.seconds)) if times.seconds else None
        return Measurement(cost, None, [outputs[k] for k in sorted(outputs)])

    def close(self) -> None:
        self._dir.cleanup()


def tune_model(model: str | Path, target: Any = "host", *, log: str | Path, budget_s: float,
               remote: Any = None, threads: int = 1, opt_level: int = 2,
               input_shapes: Mapping[str, tuple[int, ...]] | None = None,
               progress: Progress | None = None, seed: int = 0,
               allow_tf32: bool | None = None) -> TuneSummary:
    """Tune a model's kernel schedules for `budget_s` seconds, appending every measurement
    to `log` (a run resumes from it); `deepc.compile(tuned=best_knobs(log, target))`
    applies the result. CPU (llvm) targets search the loop knobs of every kernel; CUDA
    targets the tiles of the matrix-product stages (TF32 ones with `allow_tf32`)."""
    tgt = load_target(target)
    if tgt.backend not in ("llvm", "cuda"):
        raise TargetError(f"deepc tune searches CPU (llvm) and CUDA schedules; target"
                          f" {tgt.name!r} uses the {tgt.backend!r} backend, whose knobs it"
                          " cannot search yet")
    graph = load_graph(model, input_shapes)
    _, kernels = lower_model(graph, tgt, opt_level)
    if tgt.backend == "cuda":
        if remote is not None:
            raise TargetError("deepc tune --remote times CPU boards; tune a CUDA target on"
                              " the machine with the GPU")
        return _tune_cuda(kernels, tgt, log, budget_s, progress, seed, allow_tf32)
    tasks = extract_tasks(kernels, tgt)
    if remote is not None:
        measurer: Any = RemoteMeasurer(graph, tgt, remote, threads, opt_level=opt_level)
    else:
        host = load_target("host")
        if tgt.triple.split("-")[0] != host.triple.split("-")[0]:
            raise TargetError(f"target {tgt.name!r} ({tgt.triple}) does not run on this"
                              f" machine ({host.triple}): tune it on a board with --remote"
                              " HOST:PORT")
        measurer = LocalMeasurer(tgt, threads)
    start = time.perf_counter()
    tune_log = TuneLog(log, tgt.fingerprint(), threads)
    try:
        # here, the last share of the budget checks the winners in the whole model
        search_s = budget_s if remote is not None else budget_s * (1 - MODEL_CHECK_SHARE)
        summary = tune(tasks, measurer, tune_log, search_s, progress, seed)
    finally:
        measurer.close()
    if remote is None and time.perf_counter() < start + budget_s:  # not when resumed spent
        runner = _BundleRunner(graph, tgt, threads, opt_level)
        try:
            check = check_in_model(runner.build, tune_log, start + budget_s,
                                   {t.key: t.count for t in tasks})
        finally:
            runner.close()
        summary.model_check = check.to_dict() if check else None
        summary.elapsed = time.perf_counter() - start
    return summary


class _BundleRunner:
    """The model built with some tuned knobs, loaded here, as a call that runs it once."""

    def __init__(self, graph: Any, target: Any, threads: int, opt_level: int):
        self.graph, self.target = graph, target
        self.threads, self.opt_level = threads, opt_level
        self._dir = tempfile.TemporaryDirectory(prefix="deepc-check-")
        self._built = 0

    def build(self, tuned: dict[str, dict[str, Any]]) -> Callable[[], Any]:
        from deepc.runtime.inputs import random_inputs
        from deepc.runtime.loaders import load

        compiled = compile_model(self.graph, self.target, opt_level=self.opt_level,
                                 tuned=tuned or None)
        self._built += 1
        model = load(compiled.save(Path(self._dir.name) / f"{self._built}.tar"))
        model.set_num_threads(self.threads)
        feeds = random_inputs(compiled.graph, 0)
        return lambda: model.run(feeds)

    def close(self) -> None:
        self._dir.cleanup()


def _tune_cuda(kernels: list[Any], tgt: Any, log: str | Path, budget_s: float,
               progress: Progress | None, seed: int, allow_tf32: bool | None) -> TuneSummary:
    """The GPU search: candidates built by nvcc and timed here through pycuda, in a worker
    (both needed only once measuring starts; the tasks and their knob spaces are pure)."""
    tasks = extract_gpu_tasks(kernels, tgt, CUDA, uses_tf32(tgt, CUDA, allow_tf32))
    measurer = CudaMeasurer(tgt)
    try:
        # records say 1 thread: the GPU decides its own, and --tuning-log reads them so
        return tune(tasks, measurer, TuneLog(log, tgt.fingerprint(), 1), budget_s, progress,
                    seed)
    finally:
        measurer.close()

"""A tuning log's effect on CPU: the untuned bundle, the tuned one (the log's records of that
thread count) and onnxruntime, loaded in one process and timed in rounds whose order rotates
(whoever runs right after onnxruntime pays for what it left in the caches and the core, so
each takes every position), with a short pause after each call. Prints one line per model:
kernels tuned, median and 10th-percentile ms of each, the median process CPU time of each and
their ratios (at one thread the fair figure on a loaded machine), and the load average.

    python tools/tune_compare.py --log sq.jsonl --threads 1 ../shared/models/squeezenet1_1.onnx
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import deepc
from deepc.bench import onnxruntime_session
from deepc.runtime.inputs import random_inputs
from deepc.target import load_target
from deepc.tune.log import best_knobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--log", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=90)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    host = load_target("host")
    plain = deepc.compile(args.model, host)
    tuned = deepc.compile(args.model, host, tuned=best_knobs(args.log, host, args.threads))
    feeds = random_inputs(plain.graph, 0)
    with tempfile.TemporaryDirectory() as tmp:
        models = [deepc.load(c.save(Path(tmp) / f"{k}.tar")) for k, c in enumerate((plain, tuned))]
    for m in models:
        m.set_num_threads(args.threads)
    for x, y in zip(models[0].run(feeds).values(), models[1].run(feeds).values()):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-3)
    ort = onnxruntime_session(args.model, args.threads)
    fns = [lambda: models[0].run(feeds), lambda: models[1].run(feeds),
           lambda: ort.run(None, feeds)]
    for fn in fns * 5:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]  # process CPU time: a busy machine's waits left out
    for r in range(args.rounds):
        for k in [(r + j) % len(fns) for j in range(len(fns))]:
            cpu_start, start = time.process_time(), time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - start)
            cpu[k].append(time.process_time() - cpu_start)
            time.sleep(0.002)  # thread pools settle
    med = [float(np.median(t)) * 1e3 for t in times]
    low = [float(np.percentile(t, 10)) * 1e3 for t in times]
    on_cpu = [float(np.median(t)) * 1e3 for t in cpu]
    applied = sum(r.source == "tuned" for r in tuned.records)
    print(f"{args.model.stem}: tuned {applied}/{len(tuned.records)} kernels; median ms untuned"
          f" {med[0]:.2f} tuned {med[1]:.2f} onnxruntime {med[2]:.2f}; p10 untuned {low[0]:.2f}"
          f" tuned {low[1]:.2f} onnxruntime {low[2]:.2f}; CPU ms untuned {on_cpu[0]:.2f} tuned"
          f" {on_cpu[1]:.2f} onnxruntime {on_cpu[2]:.2f}: tuned/onnxruntime"
          f" {on_cpu[1] / on_cpu[2]:.3f} untuned/onnxruntime {on_cpu[0] / on_cpu[2]:.3f}"
          f" tuned/untuned {on_cpu[1] / on_cpu[0]:.3f}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Two builds of deepc side by side: every model compiled by each source tree, the bundles
loaded in one process and timed alternately (warm-up, then rounds that swap which goes
first), with their outputs compared. For checking that a change keeps speed: run it with the
tree before the change as --old and the current one as --new.

    python tools/ab_bench.py --old /tmp/base/src --new src --target host --threads 1 \\
        ../shared/models/*.onnx
    python tools/ab_bench.py --old OLD --new src --target cuda-sm90 --batch 1 --batch 32 \\
        --tf32 --fp32 MODELS...

Prints one row per model and configuration (median ms of each, new/old) and the geomean of
the ratios; --json writes them too. The bundles are compiled in subprocesses with the given
tree first on PYTHONPATH; the timing process uses this one's deepc (bundles are loaded by the
runtime, whose format both trees share).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

COMPILE = """
import sys, onnx, deepc
model, target, out = sys.argv[1:4]
batch, tf32 = int(sys.argv[4]), sys.argv[5] == "1"
shapes = None
if batch:
    first = onnx.load(model, load_external_data=False).graph.input[0]
    dims = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
    shapes = {first.name: (batch, *dims[1:])}
deepc.compile(model, target, input_shapes=shapes, allow_tf32=tf32).save(out)
"""


def compile_bundle(src: str, model: str, target: str, out: Path, batch: int, tf32: bool) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(src).resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])}
    run = subprocess.run([sys.executable, "-c", COMPILE, model, target, str(out), str(batch),
                          "1" if tf32 else "0"], env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"compiling {model} with {src} failed:\n{run.stderr[-2000:]}")


def time_pair(old_tar: Path, new_tar: Path, threads: int, rounds: int,
              runs: int, new_first: bool = False) -> dict[str, float]:
    import numpy as np

    import deepc

    # the load order decides which model's memory is allocated first (on a GPU: which arena
    # gets which addresses); --new-first swaps it to show whether placement moves a ratio
    if new_first:
        new_model = deepc.load(new_tar)
        models = [deepc.load(old_tar), new_model]
    else:
        models = [deepc.load(old_tar), deepc.load(new_tar)]
    feeds = models[1].random_inputs(seed=0)
    outs = [m.run(feeds) for m in models]
    diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) if a.size else 0.0
               for a, b in zip(outs[0].values(), outs[1].values()))
    for m in models:
        m.set_num_threads(threads)
        m.time_runs(feeds, runs=max(runs // 2, 1), warmup=2)
    times: list[list[float]] = [[], []]
    for r in range(rounds):
        for k in ((0, 1) if r % 2 == 0 else (1, 0)):
            times[k] += models[k].time_runs(feeds, runs=runs, warmup=0).seconds
    old, new = (statistics.median(t) * 1e3 for t in times)
    return {"old_ms": old, "new_ms": new, "ratio": new / old, "max_abs_diff": diff}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--old", required=True, help="src/ of the tree before the change")
    ap.add_argument("--new", default="src", help="src/ of the tree after it")
    ap.add_argument("--target", default="host")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, action="append", help="batch sizes (default: model's)")
    ap.add_argument("--tf32", action="store_true", help="also with TF32 (CUDA)")
    ap.add_argument("--fp32", action="store_true", help="strict fp32 (default unless --tf32)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="runs per round and build")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--new-first", action="store_true",
                    help="load the new bundle before the old one (an allocation-order check)")
    args = ap.parse_args()
    modes = ([False] if args.fp32 or not args.tf32 else []) + ([True] if args.tf32 else [])
    configs = [(m, b, t) for m in args.models for b in (args.batch or [0]) for t in modes]
    with tempfile.TemporaryDirectory(prefix="deepc-ab-") as tmp:
        jobs = []
        for i, (m, b, t) in enumerate(configs):
            for side, src in (("old", args.old), ("new", args.new)):
                jobs.append((src, m, args.target, Path(tmp) / f"{i}.{side}.tar", b, t))
        with ThreadPoolExecutor(max(1, min(args.jobs, len(jobs)))) as pool:
            list(pool.map(lambda j: compile_bundle(*j), jobs))
        rows = []
        for i, (m, b, t) in enumerate(configs):
            row = {"model": Path(m).stem, "batch": b or 1, "tf32": t,
                   **time_pair(Path(tmp) / f"{i}.old.tar", Path(tmp) / f"{i}.new.tar",
                               args.threads, args.rounds, args.runs, args.new_first)}
            rows.append(row)
            print(f"{row['model']:<22} b{row['batch']:<3} {'tf32' if t else 'fp32'}"
                  f"  old {row['old_ms']:9.3f} ms  new {row['new_ms']:9.3f} ms"
                  f"  new/old {row['ratio']:.3f}  max|diff| {row['max_abs_diff']:.2e}",
                  flush=True)
    geo = math.exp(statistics.fmean(math.log(r["ratio"]) for r in rows))
    print(f"geomean new/old {geo:.3f} over {len(rows)} rows")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "geomean": geo}, indent=2))


if __name__ == "__main__":
    main()

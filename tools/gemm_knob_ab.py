"""One model compiled for a CUDA target with one GEMM tile knob of its tiled matrix products
(schedule/gpu_gemm_knobs.py; `stages` by default) forced to each of several values, every
other knob the default's; the bundles loaded in one process and timed in turns, their outputs
compared with the first's: for choosing a default on a real GPU (needs pycuda and a GPU;
compiling alone needs nvcc).

    python tools/gemm_knob_ab.py ../shared/models/resnet18.onnx --batch 32 --tf32 \\
        --values 1,2,3,4
    python tools/gemm_knob_ab.py ../shared/models/resnet18.onnx --batch 32 --tf32 \\
        --knob bk --values 16,32

A value a kernel cannot take (a ring past the target's shared memory, a tile its threads
cannot fetch) leaves that kernel at its default; the table says how many workloads each
setting changed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import deepc
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import async_copy, kernel_stages, uses_tf32
from deepc.errors import ScheduleError
from deepc.schedule.gpu import default_gemm_knobs
from deepc.schedule.record import Workload


def forced(compiled: Any, knob: str, value: int) -> dict[str, dict[str, Any]]:
    """Per workload, the default tile knobs with `knob` = `value`, where the kernel takes
    them."""
    target = compiled.target
    tf32 = uses_tf32(target, CUDA, compiled.options.allow_tf32)
    out = {}
    for k in compiled.kernels:
        knobs = default_gemm_knobs(k.func, target, tf32, async_copy(target, CUDA))
        if not any(n.rpartition(".")[2] == "tiled" and v for n, v in knobs.items()):
            continue
        knobs = {n: value if n.rpartition(".")[2] == knob else v for n, v in knobs.items()}
        try:
            kernel_stages(k, target, CUDA, tf32, knobs)
        except ScheduleError:
            continue
        out[Workload.of(k.func, k.ops, target.fingerprint()).key] = knobs
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--target", default="cuda-sm90")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--knob", default="stages", help="the GEMM knob to vary")
    ap.add_argument("--values", default="1,2,3,4", help="comma-separated values of it")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="runs per round and bundle")
    args = ap.parse_args()
    import onnx

    first = onnx.load(args.model, load_external_data=False).graph.input[0]
    dims = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
    shapes = {first.name: (args.batch, *dims[1:])}
    base = deepc.compile(args.model, args.target, input_shapes=shapes, allow_tf32=args.tf32)
    settings = [int(s) for s in args.values.split(",")]
    with tempfile.TemporaryDirectory(prefix="deepc-knob-") as tmp:
        models, changed = [], []
        for s in settings:
            tuned = forced(base, args.knob, s)
            changed.append(len(tuned))
            m = deepc.compile(args.model, args.target, input_shapes=shapes,
                              allow_tf32=args.tf32, tuned=tuned)
            models.append(deepc.load(m.save(Path(tmp) / f"s{s}.tar")))
        feeds = models[0].random_inputs(seed=0)
        outs = [m.run(feeds) for m in models]
        for m in models:
            m.time_runs(feeds, runs=args.runs, warmup=2)
        times: list[list[float]] = [[] for _ in models]
        for r in range(args.rounds):  # each round in another order
            for k in np.roll(np.arange(len(models)), r):
                times[k] += models[k].time_runs(feeds, runs=args.runs, warmup=0).seconds
    for s, n, t, out in zip(settings, changed, times, outs):
        diff = max(float(np.max(np.abs(a.astype(np.float64) - b)))
                   for a, b in zip(outs[0].values(), out.values()))
        print(f"{args.knob} {s}: {statistics.median(t) * 1e3:9.3f} ms  ({n} workloads set)"
              f"  max|diff| vs {settings[0]}: {diff:.2e}")


if __name__ == "__main__":
    main()

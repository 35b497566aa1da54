"""One model compiled for a CUDA target with GEMM tile knobs of its tiled matrix products
(schedule/gpu_gemm_knobs.py) forced to each of several settings, every other knob the
default's; the bundles loaded in one process and timed in turns, their outputs compared with
the first's: for choosing a default on a real GPU (needs pycuda and a GPU; compiling alone
needs nvcc).

    python tools/gemm_knob_ab.py ../shared/models/resnet18.onnx --batch 32 --tf32 \\
        --values 1,2,3,4
    python tools/gemm_knob_ab.py ../shared/models/resnet18.onnx --batch 32 --tf32 \\
        --knob bk --values 16,32
    python tools/gemm_knob_ab.py MODEL --batch 32 --tf32 \\
        --sets default "bm=128,bn=128,bk=16,min_blocks=2"

--knob/--values vary one knob; --sets gives whole settings ("default": no knob forced), each
applied to the products whose edge tiles it keeps within the default policy's waste (where
it names no split, the policy's split-K for the new tile). A setting a kernel cannot take
(a ring past the target's shared memory, a tile its threads cannot fetch) leaves that kernel
at its default; the table says how many workloads each setting changed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import deepc
from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import async_copy, kernel_stages, uses_tf32
from deepc.errors import ScheduleError
from deepc.schedule.gpu import default_gemm_knobs, gemm_products
from deepc.schedule.gpu_gemm_match import EDGE_WASTE, GemmParts, GemmTile, split_k, tiles
from deepc.schedule.record import Workload

SHAPE = {"bm", "bn", "bk", "min_blocks"}  # the knobs a split-K depends on


def _override(
    knobs: dict[str, Any], prefix: str, parts: GemmParts, setting: dict[str, int], sms: int
) -> bool:
    """`setting` into one stage's `knobs` where its tile wastes little; whether it went in.
    A new tile shape must keep the policy's edge waste and takes its split-K; a setting of
    other knobs (the ring's stages) keeps the default's tile and split."""
    if not knobs.get(f"{prefix}tiled"):
        return False
    new = {n: setting.get(n, knobs[f"{prefix}{n}"]) for n in ("bm", "bn", "bk")}
    waste = tiles(parts, new["bm"], new["bn"]) * new["bm"] * new["bn"] / (parts.m * parts.n)
    if setting.keys() & {"bm", "bn"} and waste > EDGE_WASTE:
        return False
    if "split" not in setting and not parts.g_axes and setting.keys() & SHAPE:
        tile = GemmTile(
            new["bm"],
            new["bn"],
            new["bk"],
            mma=True,
            min_blocks=setting.get("min_blocks", knobs[f"{prefix}min_blocks"]),
        )
        knobs[f"{prefix}split"] = split_k(replace(tile, split=1), parts, sms).split
    knobs |= {f"{prefix}{n}": v for n, v in setting.items()}
    return True


def forced(compiled: Any, setting: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per workload, the default tile knobs with `setting`'s values, where the kernel takes
    them."""
    target = compiled.target
    tf32 = uses_tf32(target, CUDA, compiled.options.allow_tf32)
    out = {}
    for k in compiled.kernels:
        knobs = default_gemm_knobs(k.func, target, tf32, async_copy(target, CUDA))
        changed = [
            _override(knobs, p, parts, setting, target.sm_count)
            for p, (_, parts) in gemm_products(k.func).items()
        ]
        if not any(changed):
            continue
        try:
            kernel_stages(k, target, CUDA, tf32, knobs)
        except ScheduleError:
            continue
        out[Workload.of(k.func, k.ops, target.fingerprint()).key] = knobs
    return out


def _setting(text: str) -> dict[str, int]:
    if text == "default":
        return {}
    return {n: int(v) for n, v in (kv.split("=") for kv in text.split(","))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--target", default="cuda-sm90")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--knob", default="stages", help="the GEMM knob to vary")
    ap.add_argument("--values", default="1,2,3,4", help="comma-separated values of it")
    ap.add_argument("--sets", nargs="+", help='whole settings ("default", "bm=128,bn=128")')
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5, help="runs per round and bundle")
    args = ap.parse_args()
    import onnx

    first = onnx.load(args.model, load_external_data=False).graph.input[0]
    dims = [d.dim_value or 1 for d in first.type.tensor_type.shape.dim]
    shapes = {first.name: (args.batch, *dims[1:])}
    base = deepc.compile(args.model, args.target, input_shapes=shapes, allow_tf32=args.tf32)
    names = args.sets or [f"{args.knob}={v}" for v in args.values.split(",")]
    with tempfile.TemporaryDirectory(prefix="deepc-knob-") as tmp:
        models, changed = [], []
        for i, name in enumerate(names):
            tuned = forced(base, _setting(name)) if name != "default" else {}
            changed.append(len(tuned))
            m = deepc.compile(
                args.model, args.target, input_shapes=shapes, allow_tf32=args.tf32, tuned=tuned
            )
            models.append(deepc.load(m.save(Path(tmp) / f"s{i}.tar")))
        feeds = models[0].random_inputs(seed=0)
        outs = [m.run(feeds) for m in models]
        for m in models:
            m.time_runs(feeds, runs=args.runs, warmup=2)
        times: list[list[float]] = [[] for _ in models]
        for r in range(args.rounds):  # each round in another order
            for k in np.roll(np.arange(len(models)), r):
                times[k] += models[k].time_runs(feeds, runs=args.runs, warmup=0).seconds
    for name, n, t, out in zip(names, changed, times, outs):
        diff = max(
            float(np.max(np.abs(a.astype(np.float64) - b)))
            for a, b in zip(outs[0].values(), out.values())
        )
        print(
            f"{name}: {statistics.median(t) * 1e3:9.3f} ms  ({n} workloads set)"
            f"  max|diff| vs {names[0]}: {diff:.2e}"
        )


if __name__ == "__main__":
    main()

"""GPU tuning tasks: a model's kernels with matrix-product stages, grouped by workload, whose
tile knobs (schedule/gpu_gemm_knobs.py) are searched; a candidate is the kernel's stages
rendered with its knobs, checked against the target's limits before anything is built."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from deepc.backends.cstyle import Dialect
from deepc.backends.gpu.render import async_copy, kernel_stages
from deepc.errors import ScheduleError
from deepc.ir.loop import Buffer, PrimFunc
from deepc.ir.loop_verify import verify_func
from deepc.lowering.kernels import Kernel
from deepc.schedule.gpu import Stage, split_stages, stage_prefix
from deepc.schedule.gpu_gemm_knobs import tile_from_knobs, tile_knobs
from deepc.schedule.gpu_gemm_match import GemmParts, choose_tile, match_gemm, tiles
from deepc.schedule.schedule import Schedule
from deepc.target.spec import Target
from deepc.tune.tasks import by_workload

# the values tried per knob (the target's limits and the product's shape reject some)
AXES: dict[str, list[Any]] = {
    "tiled": [False, True], "mma": [False, True], "bm": [32, 64, 128, 256],
    "bn": [32, 64, 128], "bk": [8, 16, 32], "threads": [64, 128, 256], "tx": [8, 16, 32],
    "warps_m": [1, 2, 4], "warps_n": [1, 2, 4], "min_blocks": [1, 2, 3, 4],
    "split": [1, 2, 3, 4, 6, 8], "stages": [1, 2, 3, 4]}


@dataclass
class GpuTask:
    key: str  # Workload.key
    kernel: str
    ops: tuple[str, ...]
    func: PrimFunc  # lowered, unscheduled
    count: int
    default: Schedule  # knobs only: a GPU candidate is rebuilt from its knobs
    features: list[float]
    main: str  # prefix of the stage with the largest product
    lowered: Kernel
    target: Target
    dialect: Dialect
    tf32: bool
    gemms: dict[str, GemmParts]  # the matrix-product stages, by knob prefix

    @property
    def tolerance(self) -> float:
        """How far a candidate's outputs may be from the default's: TF32 rounds operands to
        10 bits, and a candidate may trade a TF32 tile for an fp32 one."""
        return 1e-2 if self.tf32 else 1e-4

    def stages(self, knobs: dict[str, Any]) -> tuple[list[Stage], tuple[Buffer, ...]]:
        """The kernel's launches with `knobs` (raises ScheduleError where they do not fit)."""
        return kernel_stages(self.lowered, self.target, self.dialect, self.tf32, knobs)

    def canonical(self, knobs: dict[str, Any],
                  base: dict[str, Any] | None = None) -> dict[str, Any]:
        """One spelling per set of tiles (tile_knobs of what the knobs make, whatever
        `base` they were sampled from); raises ScheduleError for knobs the target or the
        product rejects."""
        out: dict[str, Any] = {}
        for prefix, parts in self.gemms.items():
            mine = {k[len(prefix):]: v for k, v in knobs.items() if k.startswith(prefix)}
            tile = tile_from_knobs(parts, self.target, self.tf32, mine,
                                   async_copy(self.target, self.dialect))
            out |= {f"{prefix}{k}": v for k, v in tile_knobs(tile).items()}
        return out

    def schedule(self, knobs: dict[str, Any]) -> Schedule:
        """The candidate's canonical knobs and its launches' steps in order."""
        canonical = self.canonical(knobs)
        stages, _ = self.stages(canonical)
        return Schedule([step for s in stages for step in s.schedule.steps], canonical)

    def axes(self) -> dict[str, list[Any]]:
        pipelined = async_copy(self.target, self.dialect)
        axes = {f"{p}{name}": [v for v in values if (name != "mma" or self.tf32 or not v)
                               and (name != "stages" or pipelined or v == 1)]
                for p in self.gemms for name, values in AXES.items()}
        return {k: v for k, v in axes.items() if len(v) > 1}

    def fits(self, knobs: dict[str, Any]) -> bool:
        """Whether the knobs pass the target's limits (cheap: no stage is built)."""
        try:
            self.canonical(knobs)
        except ScheduleError:
            return False
        return True

    def seeds(self) -> list[dict[str, Any]]:
        """Candidates measured before the search samples any: none (the tiles' limits
        already keep the space small)."""
        return []

    def knob_features(self, knobs: dict[str, Any]) -> list[float]:
        """The main product's tile: its shape, threads, kind, split, pipeline stages, and
        how many waves of blocks it makes on the target's SMs."""
        p, parts = self.main, self.gemms[self.main]

        def get(name: str) -> float:
            return float(knobs.get(f"{p}{name}", 0))

        bm, bn, split = max(get("bm"), 1.0), max(get("bn"), 1.0), max(get("split"), 1.0)
        threads = 32 * get("warps_m") * get("warps_n") if knobs.get(f"{p}mma") else get(
            "threads")
        blocks = tiles(parts, int(bm), int(bn)) * split
        waves = blocks / (self.target.sm_count * max(get("min_blocks"), 1.0))
        return [get("tiled"), get("mma"), math.log2(bm), math.log2(bn),
                math.log2(max(get("bk"), 1.0)), math.log2(max(threads, 1.0)), split,
                get("min_blocks"), math.log2(max(waves, 1e-3)), max(get("stages"), 1.0)]


def extract_gpu_tasks(kernels: list[Kernel], target: Target, dialect: Dialect,
                      tf32: bool) -> list[GpuTask]:
    """The distinct workloads of a model's kernels that have a matrix-product stage (the
    only GPU stages with knobs), in first-use order."""
    return by_workload(kernels, target, lambda key, k: _gpu_task(key, k, target, dialect, tf32))


def _gpu_task(key: str, k: Kernel, target: Target, dialect: Dialect,
              tf32: bool) -> GpuTask | None:
    func = verify_func(k.func)
    stmts, _ = split_stages(func)
    gemms = {}
    for n, body in enumerate(stmts):
        parts = match_gemm(PrimFunc(func.name, func.params, body, dict(func.attrs)))
        if parts is not None:
            gemms[stage_prefix(n, len(stmts))] = parts
    if not gemms:
        return None
    main = max(gemms, key=lambda p: gemms[p].m * gemms[p].n * gemms[p].k)
    parts = gemms[main]
    default: dict[str, Any] = {}
    for prefix, pp in gemms.items():
        tile = choose_tile(pp, target, tf32, async_copy(target, dialect))
        default |= {f"{prefix}{n}": v for n, v in tile_knobs(tile).items()}
    features = [math.log2(parts.m), math.log2(parts.n), math.log2(parts.k),
                float(len(stmts))]
    task = GpuTask(key, k.name, tuple(k.ops), func, 1, Schedule([], default), features,
                   main, k, target, dialect, tf32, gemms)
    try:
        task.default = task.schedule(default)
    except ScheduleError:
        return None  # a default tile the knob rules refuse: nothing safe to search from
    return task

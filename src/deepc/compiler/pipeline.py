"""`deepc.compile`: the stage chain from a model to a backend's module and a memory plan.

frontend -> graph passes -> lowering (kernels) -> schedule -> memory plan -> build

The target's backend (`device.backend`) is found in BACKENDS before any work; it schedules
the kernels and builds them. The compiled model's bundle is written by the packager of the
target's device kind (CompiledModel.save).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepc.backends import BACKENDS, Backend, CompileOptions, KernelSchedule
from deepc.compiler.calibrate import value_ranges
from deepc.compiler.model import CompiledModel
from deepc.errors import InputError, TargetError
from deepc.frontends import load
from deepc.ir.graph import Graph
from deepc.lowering.kernels import Kernel, group_kernel
from deepc.lowering.plan import make_plan, with_concat_views
from deepc.passes import PassContext, run_pipeline
from deepc.passes.fuse import groups_of
from deepc.registry import NotRegisteredError
from deepc.schedule.record import ScheduleRecord, Workload
from deepc.target import load_target

Progress = Callable[[str, int, int], None]


def load_graph(model: str | Path | Graph,
               input_shapes: Mapping[str, tuple[int, ...]] | None) -> Graph:
    return model if isinstance(model, Graph) else load(model, input_shapes)


def backend_for(target: Any) -> Backend:
    """The target's backend, or one line saying this deepc has none by that name."""
    try:
        return BACKENDS.get(target.backend)
    except NotRegisteredError:
        raise TargetError(f"target {target.name!r} uses the {target.backend!r} backend, which"
                          " this version of deepc does not provide — choose another target"
                          " (deepc targets lists them)") from None


def lower_model(model: str | Path | Graph, target: Any, opt_level: int = 2,
                input_shapes: Mapping[str, tuple[int, ...]] | None = None,
                ctx: PassContext | None = None,
                report: Progress | None = None) -> tuple[Graph, list[Kernel]]:
    """The front half of the chain: the optimised graph and its kernels, unscheduled (what
    `deepc tune` searches schedules for)."""
    report = report or (lambda stage, done, total: None)
    report("import", 0, 1)
    ctx = ctx or PassContext(opt_level)
    ctx.target = target
    graph = run_pipeline(load_graph(model, input_shapes), opt_level, ctx)
    groups = groups_of(graph)
    kernels = []
    for k, group in enumerate(groups):
        report("lower", k, len(groups))
        kernels.append(group_kernel(graph, group, k))
    # the HLS arena sizes each kernel argument by its declared buffer: no widened parts
    return graph, kernels if target.kind == "fpga" else with_concat_views(graph, kernels)


def compile(model: str | Path | Graph, target: Any = "host", *,
            input_shapes: Mapping[str, tuple[int, ...]] | None = None,
            opt_level: int = 2, pass_context: Any = None,
            progress: Progress | None = None, allow_tf32: bool | None = None,
            tuned: Mapping[str, Mapping[str, Any]] | None = None,
            static_runner: bool = False, precision: str = "float32") -> CompiledModel:
    """Compile a model (path or graph IR) for a target (name, path or Target).

    `opt_level` picks the graph pass pipeline (passes/manager.py PIPELINES): -O0 none, -O1
    constant folding and dead-code removal, -O2 (default) also the simplifications, layout
    and fusion; -O3 is -O2 today. Kernel schedules are the same at every level.
    `allow_tf32` lets GPU targets that declare TF32 tensor cores use them for fp32 matrix
    products (rtol ~1e-2 instead of ~1e-3); None reads DEEPC_ALLOW_TF32.
    `tuned` maps workload keys to the knobs to schedule them with (deepc.tune.log's
    `best_knobs` of a tuning log); their records say source "tuned".
    `static_runner` (CPU targets): the bundle's bin/run_model is linked fully static with the
    model inside (musl through zig for cross targets), so it runs on any Linux of the target's
    architecture whatever its C library.
    `precision` other than float32 (fixed16: backends whose `precisions` list it) is chosen
    per tensor from a calibration: the graph's numpy reference on seeded random inputs.
    `pass_context` (a deepc.passes.PassContext) carries pass options: disabled passes,
    passes to print after, and collects pass times and dumps for the caller.
    """
    start = time.perf_counter()
    tgt = load_target(target)
    backend = backend_for(tgt)
    if static_runner and tgt.kind != "cpu":
        raise TargetError(f"--static-runner links a CPU bundle's bin/run_model, and target"
                          f" {tgt.name!r} is a {tgt.kind} device — leave the option out")
    if precision not in backend.precisions:
        raise InputError(f"the {backend.name} backend of target {tgt.name!r} computes in"
                         f" {' or '.join(backend.precisions)}, not {precision} — drop"
                         " --precision or choose an FPGA target")
    report = progress or (lambda stage, done, total: None)
    graph, kernels = lower_model(model, tgt, opt_level, input_shapes, pass_context, report)
    options = CompileOptions(opt_level, allow_tf32, dict(tuned or {}),
                             static_runner=static_runner, precision=precision)
    if precision != "float32":
        report("calibrate", 0, 1)
        options = replace(options, ranges=value_ranges(graph))
    report("schedule", 0, 1)
    scheduled = backend.schedule(kernels, tgt, options)
    records = schedule_records(kernels, scheduled, tgt)
    planned = [s.kernel for s in scheduled]
    plan = make_plan(graph, planned)
    module = backend.build(graph.name, scheduled, plan, tgt, options, report)
    return CompiledModel(graph, tgt, planned, plan, module, records, options,
                         time.perf_counter() - start)


def schedule_records(kernels: list[Kernel], scheduled: list[KernelSchedule],
                     target: Any) -> list[ScheduleRecord]:
    """Each kernel's record, keyed by the workload of its lowered (unscheduled) function."""
    fingerprint = target.fingerprint()
    return [ScheduleRecord(k.name, Workload.of(k.func, k.ops, fingerprint), s.knobs(),
                           tuple(tuple(tuple(step) for step in sch.to_list())
                                 for sch in s.launches), "tuned" if s.tuned else "default")
            for k, s in zip(kernels, scheduled)]

"""`deepc.compile`: the stage chain from a model to native code and an execution plan.

frontend -> graph passes -> kernels (compute + lowering) -> schedules -> LLVM -> object code
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepc.ir.graph import Graph
from deepc.ir.loop import PrimFunc
from deepc.lowering.kernels import Kernel, group_kernel
from deepc.lowering.plan import Plan, make_plan

Progress = Callable[[str, int, int], None]


@dataclass
class CompiledModel:
    graph: Graph
    target: Any  # deepc.target.Target
    kernels: list[Kernel]
    plan: Plan
    llvm_ir: str
    object_code: bytes
    compile_seconds: float
    schedules: dict[str, list[list[Any]]] = field(default_factory=dict)

    def stats(self) -> dict[str, Any]:
        return {
            "kernels": len(self.kernels),
            "kernel_calls": len(self.plan.calls),  # zero-copy reshapes are not called
            "arena_bytes": self.plan.workspace_bytes,
            "arena_lower_bound_bytes": self.plan.lower_bound_bytes,
            "naive_bytes": self.plan.naive_bytes,
            "inplace_values": len(self.plan.inplace),
            "params_bytes": self.plan.params_bytes,
            "compile_seconds": round(self.compile_seconds, 3),
        }

    def params(self) -> bytes:
        from deepc.compiler.package import params_of

        return bytes(params_of(self).data)

    def save(self, path: str | Path) -> Path:
        from deepc.compiler.package import write_cpu_bundle

        return write_cpu_bundle(self, Path(path))


def load_graph(model: str | Path | Graph,
               input_shapes: Mapping[str, tuple[int, ...]] | None) -> Graph:
    if isinstance(model, Graph):
        return model
    from deepc.frontends import load

    return load(model, input_shapes)


def schedule_kernels(kernels: list[Kernel], target: Any,
                     tuned: Mapping[str, Any] | None = None) -> tuple[list[PrimFunc], dict]:
    from deepc.ir.loop_verify import verify_func
    from deepc.schedule.cpu import default_schedule

    funcs, records = [], {}
    for k in kernels:
        sch = default_schedule(verify_func(k.func), target.vector_bits, target.cores, target)
        funcs.append(verify_func(sch.apply(k.func)))
        records[k.name] = sch.to_list()
    return funcs, records


def compile(model: str | Path | Graph, target: Any = "host", *,
            input_shapes: Mapping[str, tuple[int, ...]] | None = None,
            opt_level: int = 2, pass_context: Any = None,
            progress: Progress | None = None, allow_tf32: bool | None = None) -> CompiledModel:
    """Compile a model (path or graph IR) for a target (name, path or Target).

    `allow_tf32` lets CUDA targets that declare TF32 tensor cores use them for fp32 matrix
    products (rtol ~1e-2 instead of ~1e-3); None reads DEEPC_ALLOW_TF32.

    `pass_context` (a deepc.passes.PassContext) carries pass options: disabled passes,
    passes to print after, and collects pass times and dumps for the caller.
    """
    from deepc.backends.llvm.codegen import emit_kernel
    from deepc.backends.llvm.entry import emit_entry
    from deepc.backends.llvm.machine import emit_object, optimize
    from deepc.passes import run_pipeline
    from deepc.passes.fuse import groups_of
    from deepc.target import load_target

    start = time.perf_counter()
    tgt = load_target(target)
    report = progress or (lambda stage, done, total: None)
    report("import", 0, 1)
    from deepc.passes import PassContext

    ctx = pass_context or PassContext(opt_level)
    ctx.target = tgt
    graph = run_pipeline(load_graph(model, input_shapes), opt_level, ctx)
    groups = groups_of(graph)
    kernels = []
    for k, group in enumerate(groups):
        report("lower", k, len(groups))
        kernels.append(group_kernel(graph, group, k))
    if tgt.backend == "cuda":
        from deepc.compiler.cuda import compile_cuda

        return compile_cuda(graph, kernels, tgt, start, report,  # type: ignore[return-value]
                            allow_tf32=allow_tf32)
    report("schedule", 0, 1)
    funcs, records = schedule_kernels(kernels, tgt)
    kernels = [Kernel(k.name, f, k.inputs, k.outputs, k.nodes, k.ops)
               for k, f in zip(kernels, funcs)]
    plan = make_plan(graph, kernels)
    from llvmlite import ir

    module = ir.Module(name=graph.name)
    for k, kern in enumerate(kernels):
        report("codegen", k, len(kernels))
        emit_kernel(module, kern.func)
    emit_entry(module, plan)
    report("llvm", 0, 1)
    spec = machine_spec(tgt)
    mod = optimize(module, spec)
    obj = emit_object(mod, spec)
    return CompiledModel(graph, tgt, kernels, plan, str(mod), obj,
                         time.perf_counter() - start, records)


def machine_spec(target: Any) -> Any:
    from deepc.backends.llvm.machine import MachineSpec

    features = target.llvm_features
    if not isinstance(features, str):
        features = ",".join(features)
    return MachineSpec(target.triple, target.cpu or "", features)

"""The device plan of the GPU bundles (CUDA, OpenCL, Metal): one arena and every launch with
byte offsets into it.

The device arena holds, in order: the params blob, the workspace of the memory plan, the
scratch space of multi-stage kernels (shared by all kernels: they run one after another),
then the model's inputs and outputs. Every launch's arguments are byte offsets into it, so
the runtime only adds the arena's base address (or passes the arena and the offsets).
"""

from __future__ import annotations

from typing import Any

from deepc.ir.types import itemsize
from deepc.lowering.plan import regions

PLAN = "lib/plan.txt"  # the device plan as text, for the bundles' host programs
ALIGN = 256  # cudaMalloc's alignment (and OpenCL's usual): every region starts on one


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _scratch_offsets(buffers: tuple[Any, ...], base: int) -> tuple[list[int], int]:
    return regions([max(b.size * itemsize(b.dtype), 1) for b in buffers], base, ALIGN)


def device_plan(compiled: Any) -> dict[str, Any]:
    """Arena regions and every launch with its grid, block and argument offsets."""
    plan, graph = compiled.plan, compiled.graph
    params_bytes = _align(plan.params_bytes)
    workspace = params_bytes
    scratch = workspace + _align(plan.workspace_bytes)
    scratch_bytes = 0
    for k in plan.calls:
        scratch_bytes = max(scratch_bytes, _scratch_offsets(compiled.module.scratch[k.name], 0)[1])
    pos = scratch + scratch_bytes
    slots: dict[str, list[int]] = {"input": [], "output": []}
    for role, names in (("input", graph.inputs), ("output", graph.outputs)):
        for n in names:
            slots[role].append(pos)
            pos = _align(pos + max(graph.types[n].nbytes, 1))

    def where(value: str) -> int:
        loc = plan.locations[value]
        if loc.kind in slots:  # a concat's part lies at an offset in an output
            return slots[loc.kind][loc.index] + loc.offset
        return (0 if loc.kind == "param" else workspace) + loc.offset

    launches = []
    for k in plan.calls:
        args = [where(v) for v in k.args]
        args += _scratch_offsets(compiled.module.scratch[k.name], scratch)[0]
        for launch in compiled.module.launches[k.name]:
            launches.append({**launch.to_dict(), "kernel": k.name, "args": args})
    sizes = {role: [graph.types[n].nbytes for n in names]
             for role, names in (("input", graph.inputs), ("output", graph.outputs))}
    return {"arena_bytes": pos, "params_offset": 0, "params_bytes": plan.params_bytes,
            "input_bytes": sizes["input"], "output_bytes": sizes["output"],
            "workspace_offset": workspace,
            "scratch_offset": scratch, "scratch_bytes": scratch_bytes,
            "inputs": slots["input"], "outputs": slots["output"], "launches": launches}


def plan_text(plan: dict[str, Any], device_type: str | None) -> str:
    """lib/plan.txt, which the host programs read: one entry a line (arena, device type,
    params, input, output, then each launch: func, grid xyz, block xyz, argument count and
    argument offsets)."""
    lines = [f"arena {plan['arena_bytes']}", f"device {device_type or 'all'}",
             f"params {plan['params_offset']} {plan['params_bytes']}"]
    lines += [f"input {o} {n}" for o, n in zip(plan["inputs"], plan["input_bytes"])]
    lines += [f"output {o} {n}" for o, n in zip(plan["outputs"], plan["output_bytes"])]
    for launch in plan["launches"]:
        words = [launch["func"], *launch["grid"], *launch["block"], len(launch["args"]),
                 *launch["args"]]
        lines.append("launch " + " ".join(map(str, words)))
    return "\n".join(lines) + "\n"

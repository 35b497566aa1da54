"""What every packager writes the same way: tensor specs, the params blob in plan order,
and the manifest entries that describe the compilation (stats, options, schedule records)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepc.runtime.bundle import FileData, ParamsBlob, TensorSpec, layout_params, write_bundle
from deepc.runtime.inputs import input_bounds


def tensor_specs(compiled: Any, names: tuple[str, ...]) -> list[TensorSpec]:
    return [TensorSpec(n, compiled.graph.types[n].shape, compiled.graph.types[n].dtype)
            for n in names]


def params_of(compiled: Any) -> ParamsBlob:
    """The params blob in plan order; offsets agree with the plan's (same rule, same order)."""
    blob = layout_params({n: compiled.graph.constants[n] for n in compiled.plan.param_order})
    for name in compiled.plan.param_order:
        assert blob.index[name]["offset"] == compiled.plan.locations[name].offset
    return blob


def tuned_entries(records: list[Any]) -> list[dict[str, Any]]:
    """What a tuning log changed: each kernel scheduled with its knobs, by workload."""
    return [{"kernel": r.kernel, "workload": r.workload.key, "knobs": dict(r.knobs)}
            for r in records if r.source == "tuned"]


def write_model_bundle(compiled: Any, path: Path, *, library: Path | bytes,
                       extra: Mapping[str, Any], header: str | None = None,
                       extra_files: Mapping[str, FileData] | None = None,
                       library_member: str | None = None,
                       params: ParamsBlob | None = None) -> Path:
    """The bundle of a compiled model: its library (or device binary), params, plan and
    manifest; `extra` adds the packager's own manifest keys."""
    manifest = {"compile": compiled.stats(), "options": compiled.settings(),
                "schedules": [r.to_dict() for r in compiled.records],
                "tuned": tuned_entries(compiled.records),
                "input_bounds": input_bounds(compiled.graph), **extra}
    graph = compiled.graph
    return write_bundle(
        path, library=library, params=params or params_of(compiled),
        inputs=tensor_specs(compiled, graph.inputs),
        outputs=tensor_specs(compiled, graph.outputs), target=compiled.target,
        workspace_bytes=compiled.plan.workspace_bytes, name=graph.name,
        kernels=[k.name for k in compiled.kernels], plan=compiled.plan.to_dict(),
        extra=manifest, header=header, extra_files=extra_files,
        **({"library_member": library_member} if library_member else {}))

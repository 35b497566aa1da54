"""Packaging for CPU targets: link the object code with the runtime, write the bundle."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepc.runtime.bundle import TensorSpec, layout_params, write_bundle
from deepc.runtime.inputs import input_bounds


def tensor_specs(compiled: Any, names: tuple[str, ...]) -> list[TensorSpec]:
    return [TensorSpec(n, compiled.graph.types[n].shape, compiled.graph.types[n].dtype)
            for n in names]


def params_of(compiled: Any) -> Any:
    """The params blob in plan order; offsets agree with the plan's (same rule, same order)."""
    blob = layout_params({n: compiled.graph.constants[n] for n in compiled.plan.param_order})
    for name in compiled.plan.param_order:
        assert blob.index[name]["offset"] == compiled.plan.locations[name].offset
    return blob


def write_cpu_bundle(compiled: Any, path: Path) -> Path:
    from deepc.backends.link import link_model

    with tempfile.TemporaryDirectory(prefix="deepc-bundle-") as tmp:
        library = link_model(compiled.object_code, compiled.target, Path(tmp) / "model.so")
        return write_bundle(
            path, library=library, params=params_of(compiled),
            inputs=tensor_specs(compiled, compiled.graph.inputs),
            outputs=tensor_specs(compiled, compiled.graph.outputs),
            target=compiled.target, workspace_bytes=compiled.plan.workspace_bytes,
            name=compiled.graph.name, kernels=[k.name for k in compiled.kernels],
            plan=compiled.plan.to_dict(),
            extra={"compile": compiled.stats(), "schedules": compiled.schedules,
                   "input_bounds": input_bounds(compiled.graph)},
        )

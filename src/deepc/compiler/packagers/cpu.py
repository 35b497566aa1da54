"""Packaging for CPU targets: link the object code with the runtime, write the bundle.

Every CPU bundle carries the C example (example/main.c + Makefile); a bundle for a target that
names an emulator (a cross target) also carries bin/run_model, that example prebuilt, through
which the Python runtime runs the model under the emulator on this machine. With
`static_runner` the runner is linked fully static with the model inside (musl through zig), so
it runs on any Linux of the architecture, whatever its C library.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepc.backends.compilers import CCompiler, choose
from deepc.backends.libc_floor import check_libc_floor
from deepc.backends.link import compile_runtime, link_model, run_tool
from deepc.compiler.packagers.common import params_of, tensor_specs, write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS
from deepc.runtime.bundle import HEADER, LIBRARY, TensorSpec
from deepc.runtime.c_example import RUNNER, example_files, runner_argv, static_runner_argv
from deepc.runtime.header import render_header
from deepc.runtime.memory import ALIGN
from deepc.version import __version__


def needs_runner(target: Any) -> bool:
    """Whether bundles for `target` carry bin/run_model: when the target is run emulated."""
    return bool(getattr(target.toolchain, "emulator", None))


def build_runner(root: Path, target: Any, cc: CCompiler | None = None) -> Path:
    """Compile `root`/example/main.c against `root`/lib/model.so into `root`/bin/run_model
    (with the target's first installed compiler unless `cc` is given)."""
    cc = cc or choose(target)
    (root / RUNNER).parent.mkdir(parents=True, exist_ok=True)
    run_tool(runner_argv(target, cc, root), "build the example program bin/run_model", target)
    check_libc_floor(root / RUNNER, target, RUNNER)
    return root / RUNNER


def build_static_runner(root: Path, target: Any, cc: CCompiler, object_code: bytes) -> Path:
    """`root`/bin/run_model linked fully static, the model's kernels and runtime inside (a
    static program cannot load lib/model.so, which is built against glibc)."""
    (root / RUNNER).parent.mkdir(parents=True, exist_ok=True)
    model = root / "model.o"
    model.write_bytes(object_code)
    objects = [model, compile_runtime(target, static=True)]
    run_tool(static_runner_argv(target, cc, root, objects),
             "build the static program bin/run_model", target)
    model.unlink()
    return root / RUNNER


def header_text(compiled: Any, inputs: list[TensorSpec], outputs: list[TensorSpec],
                params_bytes: int) -> str:
    """include/deepc_model.h, rendered before the bundle is written so the runner can use it;
    render_header reads only these manifest keys (tests check it matches the manifest's)."""
    return render_header({
        "name": compiled.graph.name, "deepc_version": __version__,
        "target": compiled.target.to_dict(), "inputs": [t.to_dict() for t in inputs],
        "outputs": [t.to_dict() for t in outputs],
        "workspace_bytes": compiled.plan.workspace_bytes,
        "params": {"bytes": params_bytes, "align": ALIGN},
    })


@PACKAGERS.register("cpu")
def write_cpu_bundle(compiled: Any, path: Path) -> Path:
    target = compiled.target
    cc = choose(target)
    params = params_of(compiled)
    inputs = tensor_specs(compiled, compiled.graph.inputs)
    outputs = tensor_specs(compiled, compiled.graph.outputs)
    header = header_text(compiled, inputs, outputs, len(params.data))
    files: dict[str, Any] = dict(example_files(target, cc, len(inputs), len(outputs)))
    extra: dict[str, Any] = {"compiler": cc.kind}
    with tempfile.TemporaryDirectory(prefix="deepc-bundle-") as tmp:
        # laid out like the bundle, so the runner links and finds model.so as on the device
        root = Path(tmp)
        library = link_model(compiled.module.binary, target, root / LIBRARY)
        static = compiled.options.static_runner
        if needs_runner(target) or static:
            for member, text in [(HEADER, header), *files.items()]:
                (root / member).parent.mkdir(parents=True, exist_ok=True)
                (root / member).write_text(text)
            files[RUNNER] = (build_static_runner(root, target, cc, compiled.module.binary)
                             if static else build_runner(root, target, cc))
            extra["runner"] = RUNNER
            extra["runner_static"] = static
        return write_model_bundle(compiled, path, library=library, params=params, extra=extra,
                                  header=header, extra_files=files)

"""Per-kernel text of the lower IR levels, for `deepc inspect-ir --stage loop|source|asm`."""

from __future__ import annotations

from typing import Any

from deepc.errors import DeepcError
from deepc.ir.graph import Graph


def kernel_texts(graph: Graph, target: Any, stage: str, *, opt_level: int = 2,
                 kernel: str | None = None) -> dict[str, str]:
    from deepc.compiler.pipeline import compile, machine_spec
    from deepc.ir.loop_text import func_to_text

    compiled = compile(graph, target, opt_level=opt_level)
    names = [k.name for k in compiled.kernels]
    if kernel is not None and kernel not in names:
        raise DeepcError(f"no kernel named {kernel!r}; kernels are: {', '.join(names)}")
    chosen = [k for k in compiled.kernels if kernel in (None, k.name)]
    if stage == "loop":
        return {k.name: f"# schedule: {compiled.schedules.get(k.name)}\n{func_to_text(k.func)}"
                for k in chosen}
    if stage == "source":
        return {k.name: function_text(compiled.llvm_ir, k.func.name) for k in chosen}
    if stage == "asm":
        import llvmlite.binding as llvm

        from deepc.backends.llvm.machine import emit_assembly

        asm = emit_assembly(llvm.parse_assembly(compiled.llvm_ir), machine_spec(compiled.target))
        return {k.name: asm_function(asm, k.func.name) for k in chosen}
    raise DeepcError(f"unknown stage {stage!r}")


def function_text(llvm_ir: str, name: str) -> str:
    """One function's definition (and its outlined parallel tasks) from a module's text."""
    out, keep = [], False
    for line in llvm_ir.splitlines():
        if line.startswith("define"):
            keep = f'@"{name}"' in line or f"@{name}(" in line or f'@"{name}.task' in line
        if keep:
            out.append(line)
        if keep and line == "}":
            keep = False
            out.append("")
    return "\n".join(out)


def asm_function(asm: str, name: str) -> str:
    out, keep = [], False
    for line in asm.splitlines():
        label = line.rstrip(":").strip('"')
        if line.endswith(":") and not line.startswith((" ", "\t", ".")):
            keep = label == name or label.startswith(f"{name}.task")
        if keep:
            out.append(line)
    return "\n".join(out)

"""One function's text out of a whole module's LLVM IR or assembly (`inspect-ir`)."""

from __future__ import annotations


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

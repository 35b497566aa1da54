"""One kernel's functions out of a C-style module (`inspect-ir --stage source`)."""

from __future__ import annotations


def cstyle_text(source: str, name: str) -> str:
    """One kernel's functions (all its stages) from a C-style module: from its `// name:`
    comment to the next section's (a kernel's, or an HLS module's top function)."""
    out, keep = [], False
    for line in source.splitlines():
        if line.startswith("// k") or line.startswith("// deepc_"):
            keep = line.startswith(f"// {name}:")
        if keep:
            out.append(line)
    return "\n".join(out)

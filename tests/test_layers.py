"""The import structure of src/deepc: no module imports one of a higher layer, and no
modules import each other in a circle (../shared/DESIGN.md, "Layers"). Imports inside
functions count: a lazy import that closes a circle is the circle's bug, not its fix."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deepc"

# lowest first; a module may import its own layer and those below
LAYERS: list[set[str]] = [
    {"errors", "version", "cache", "cache_evict", "registry"},
    {"ir", "target"},
    {"ops"},
    {"frontends", "passes", "schedule", "lowering"},
    {"backends", "runtime", "tune", "rpc"},
    {"compiler"},
    {"cli", "cli_bench", "cli_cache", "cli_common", "cli_rpc", "bench", "bench_matmul", "demo",
     "backend", "__init__", "report"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(("deepc", *parts))
        out[name.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the deepc modules it imports (a name imported from a package counts as its
    submodule where one exists)."""
    modules = _modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "deepc":
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                           else node.module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "deepc"]
            for t in targets:
                resolved = _resolve(t, modules)
                if resolved and resolved != mod:
                    edges[mod].add(resolved)
    return edges


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    top = "cli" if top.startswith("cli_") else top  # the CLI's verbs, one module each
    for k, names in enumerate(LAYERS):
        if top in names:
            return k
    raise AssertionError(f"{module}: its package {top!r} has no layer in tests/test_layers.py")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_upward_imports() -> None:
    edges = import_graph()
    upward = sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                    for a, targets in edges.items() for b in targets
                    if layer_of(b) > layer_of(a))
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "\n".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(("edges", "expected"), [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": {"c"}}, []),
])
def test_cycle_finder(edges: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(edges) == expected


def test_layer_rule_catches_an_upward_import() -> None:
    assert layer_of("deepc.ir.loop") < layer_of("deepc.ops.conv") < layer_of(
        "deepc.backends.base") < layer_of("deepc.compiler.pipeline")

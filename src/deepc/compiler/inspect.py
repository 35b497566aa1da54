"""Per-kernel text of the lower IR levels for `deepc inspect-ir --stage fused|loop|schedule|
source|asm|hls`."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deepc.compiler.pipeline import compile
from deepc.errors import InputError
from deepc.ir.graph import Attrs, Graph
from deepc.ir.loop_text import func_to_text


def match_kernel(kernel: str | None, names: list[str]) -> str | None:
    """The kernel `kernel` names: its full name or a unique prefix (k003_conv for
    k003_conv_add_relu); None stays None (all kernels)."""
    if kernel is None or kernel in names:
        return kernel
    found = [n for n in names if n.startswith(kernel)]
    if len(found) == 1:
        return found[0]
    what = f"is a prefix of {len(found)} kernels" if found else "names no kernel"
    raise InputError(f"--kernel {kernel!r} {what}; kernels are: {', '.join(names)}")


def kernel_texts(graph: Graph, target: Any, stage: str, *, opt_level: int = 2,
                 kernel: str | None = None, pass_context: Any = None,
                 precision: str = "float32", allow_tf32: bool | None = None,
                 tuned: dict[str, Any] | None = None) -> dict[str, str]:
    """Each kernel's text at `stage`. The graph passes run as `compile` runs them: with
    `pass_context` (disabled passes, print-after dumps, pass times) where given, and the
    kernels are built as `compile` builds them with `allow_tf32` and `tuned` records."""
    if stage == "fused":
        return fused_texts(graph, target, opt_level=opt_level, kernel=kernel,
                           pass_context=pass_context)
    compiled = compile(graph, target, opt_level=opt_level, pass_context=pass_context,
                       precision=precision, allow_tf32=allow_tf32, tuned=tuned)
    kernel = match_kernel(kernel, [k.name for k in compiled.kernels])
    chosen = [k for k in compiled.kernels if kernel in (None, k.name)]
    records = {r.kernel: r for r in compiled.records}
    if stage == "loop":
        return {k.name: f"# schedule: {records[k.name].launches}\n{func_to_text(k.func)}"
                for k in chosen}
    if stage == "schedule":
        return {k.name: records[k.name].text() for k in chosen}
    backend = compiled.backend
    if stage == "source":
        return {k.name: backend.source_of(compiled.module, k) for k in chosen}
    if stage == "hls":  # the backend's resource/latency estimate, then the whole model's
        texts = {k.name: backend.report_of(compiled.module, k) for k in chosen}
        return texts if kernel else {**texts, "model": backend.report_of(compiled.module, None)}
    if stage == "asm":
        return {k.name: backend.assembly_of(compiled.module, k, compiled.target) for k in chosen}
    raise InputError(f"unknown stage {stage!r}")


def fused_texts(graph: Graph, target: Any, *, opt_level: int = 2,
                kernel: str | None = None, pass_context: Any = None) -> dict[str, str]:
    """The graph after the passes as fused groups: an overview (one line per kernel: its
    ops and master), then each group's nodes with the values it reads and writes. The passes
    run with `pass_context` where given, as in `compile`."""
    from deepc.ir.text import format_node
    from deepc.lowering.kernels import kernel_name
    from deepc.passes import PassContext, run_pipeline
    from deepc.passes.fuse import groups_of, master_of
    from deepc.target import load_target

    ctx = pass_context or PassContext(opt_level)
    ctx.target = load_target(target)
    fused = run_pipeline(graph, opt_level, ctx)
    groups = {kernel_name(k, g): g for k, g in enumerate(groups_of(fused))}
    kernel = match_kernel(kernel, list(groups))
    users = fused.consumers()
    overview, texts = [], {}
    for name, nodes in groups.items():
        master = master_of(nodes)
        ops = "+".join(n.op for n in nodes)
        overview.append(f"{name:<40} {len(nodes):>3} nodes  master "
                        f"{master.op if master else '-':<16} {ops}")
        if kernel not in (None, name):
            continue
        inside = {id(n) for n in nodes}
        made = {o for n in nodes for o in n.outputs if o}
        reads = dict.fromkeys(i for n in nodes for i in n.inputs if i and i not in made)
        writes = [o for o in made if o in fused.outputs
                  or any(id(u) not in inside for u in users.get(o, []))]
        plain = [replace(n, attrs=Attrs({k: v for k, v in n.attrs.items()
                                          if k != "fuse_group"})) for n in nodes]
        texts[name] = "\n".join([
            f"# master: {master.name or master.op if master else 'none (injective)'}",
            f"# reads:  {', '.join('%' + r for r in reads)}",
            f"# writes: {', '.join('%' + w for w in sorted(writes))}",
            *(format_node(fused, n) for n in plain)])
    summary = f"{len(graph.nodes)} nodes -> {len(groups)} kernels at -O{opt_level}"
    return {"groups": "\n".join([summary, *overview]), **texts} if kernel is None else texts

"""Collected report data (collect.ReportData) into one self-contained HTML page: inline SVG
and CSS, no script, nothing fetched, so the file opens anywhere offline."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from deepc import __version__
from deepc.report.charts import Bar, Row, bar_chart, duration, human_bytes, memory_svg
from deepc.report.collect import ReportData
from deepc.report.kinds import COLOURS, kernel_kind
from deepc.report.svg_graph import flops_text, graph_svg

TOP_KERNELS = 40  # bars in the kernel chart; the rest are summed into one
PEER_COLOUR = "#555"

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
.scroll { overflow: auto; max-height: 900px; border: 1px solid #eee; }
.note { color: #666; font-size: 13px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 4px; }
pre { font-size: 12px; background: #f8f8f8; padding: 6px; margin: 4px 0; }
details summary { cursor: pointer; font-family: monospace; font-size: 13px; }
"""


def render(data: ReportData) -> str:
    """The whole page."""
    c = data.compiled
    sections = [
        f"<h1>deepc report: {escape(data.model)} on {escape(c.target.name)}</h1>",
        f'<p class="note">deepc {escape(__version__)}, -O{c.options.opt_level}. Hover over a'
        " box, bar or block for its details.</p>",
        _summary(data),
        "<h2>Graph as compiled</h2>",
        '<p class="note">One box per kernel (a fused group) holding the graph nodes it'
        " computes, named after the ONNX nodes they come from (dashed: added by the passes,"
        " such as layout changes); dashed boxes are not called (zero-copy reshapes). Colours"
        " give the kind of work.</p>",
        _legend(),
        f'<div class="scroll">{graph_svg(c, data.info, data.times, data.onnx_ops)}</div>',
        "<h2>Memory plan</h2>",
        _memory_note(c),
        f'<div class="scroll">{memory_svg(c)}</div>',
        "<h2>Kernel profile</h2>",
        _profile(data),
        "<h2>Target</h2>",
        _target(c.target),
        "<h2>Passes</h2>",
        _passes(data),
        "<h2>Schedules</h2>",
        _schedules(c),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>deepc report: {escape(data.model)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(sections)}</body></html>\n")


def _table(rows: list[tuple[str, str]], head: tuple[str, str] | None = None) -> str:
    top = f"<tr><th>{escape(head[0])}</th><th>{escape(head[1])}</th></tr>" if head else ""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{top}{body}</table>"


def _summary(data: ReportData) -> str:
    c = data.compiled
    stats = c.stats()
    rows = [("model", data.model), ("target", f"{c.target.name} ({c.target.kind},"
                                              f" {c.target.backend} backend)"),
            ("ONNX nodes → graph nodes", f"{data.onnx_nodes} → {len(c.graph.nodes)}"),
            ("kernels (called)", f"{stats['kernels']} ({stats['kernel_calls']})"),
            ("FLOPs per run", flops_text(sum(i["flops"] for i in data.info.values()))),
            ("arena / lower bound / naive", " / ".join(human_bytes(stats[k]) for k in (
                "arena_bytes", "arena_lower_bound_bytes", "naive_bytes"))),
            ("params", human_bytes(stats["params_bytes"])),
            ("compile time", f"{stats['compile_seconds']:.2f} s")]
    if data.times:
        total = sum(t["ms"] for t in data.times.values())
        rows.append(("kernel time per run", f"{duration(total)} (sum of the kernels' medians over"
                                            f" {data.runs} runs, {data.threads} thread(s))"))
    return _table(rows)


def _legend() -> str:
    return '<p class="legend">' + "".join(
        f'<span><i style="background:{colour}"></i>{escape(kind)}</span>'
        for kind, colour in COLOURS.items()) + "</p>"


def _memory_note(c: Any) -> str:
    plan = c.plan
    return (f'<p class="note">Each block is an intermediate value (with the values that alias'
            f" it or overwrite it in place) at its offset in the workspace arena, across the"
            f" kernel calls it is live for. The black line is the bytes live at each call;"
            f" no arena can be smaller than its highest point, the lower bound"
            f" ({human_bytes(plan.lower_bound_bytes)}). Arena"
            f" {human_bytes(plan.workspace_bytes)}; every value in its own buffer would take"
            f" {human_bytes(plan.naive_bytes)}; {len(plan.inplace)} value(s) in place,"
            f" {len(plan.aliases)} zero-copy alias(es).</p>")


def _profile(data: ReportData) -> str:
    if not data.times:
        return f'<p class="note">{escape(data.timing_note)}</p>'
    order = sorted(data.times.items(), key=lambda kv: -kv[1]["ms"])
    rows = [Row(name, (Bar(t["ms"], COLOURS[kernel_kind(data.info[name]["ops"])],
                           f"{duration(t['ms'])} · {t['share']:.1%} · {t['gflops']:.1f} GFLOP/s"),),
                f"{name}\nops: {', '.join(data.info[name]['ops'])}")
            for name, t in order[:TOP_KERNELS]]
    rest = order[TOP_KERNELS:]
    if rest:
        ms = sum(t["ms"] for _, t in rest)
        share = sum(t["share"] for _, t in rest)
        rows.append(Row(f"{len(rest)} more kernels", (Bar(ms, COLOURS["other"],
                                                          f"{duration(ms)} · {share:.1%}"),)))
    out = [f'<p class="note">Each kernel\'s median time over {data.runs} runs, the model run'
           f" kernel by kernel on {data.threads} thread(s), slowest first: ms, share of the"
           " run, achieved GFLOP/s.</p>", bar_chart(rows, "profile")]
    if data.peer:
        out.append(_compare(data))
    return "".join(out)


def _compare(data: ReportData) -> str:
    """deepc's kernels and the peer's nodes, grouped by kind of work (the two fuse and name
    ops differently, so kernels and nodes do not pair one to one)."""
    ours: dict[str, float] = {}
    for name, t in data.times.items():
        kind = kernel_kind(data.info[name]["ops"])
        ours[kind] = ours.get(kind, 0.0) + t["ms"]
    theirs: dict[str, float] = {}
    for node in data.peer:
        theirs[node["kind"]] = theirs.get(node["kind"], 0.0) + node["ms"]
    kinds = sorted(set(ours) | set(theirs), key=lambda k: -max(ours.get(k, 0), theirs.get(k, 0)))
    peer = data.peer_name
    total_ours, total_theirs = sum(ours.values()), sum(theirs.values())
    rows = [Row("total", (Bar(total_ours, "#2c3e50", f"deepc {duration(total_ours)}"),
                          Bar(total_theirs, PEER_COLOUR, f"{peer} {duration(total_theirs)}")))]
    rows += [Row(kind, (Bar(ours.get(kind, 0.0), COLOURS[kind],
                            f"deepc {duration(ours.get(kind, 0.0))}"),
                        Bar(theirs.get(kind, 0.0), PEER_COLOUR,
                            f"{peer} {duration(theirs.get(kind, 0.0))}"))) for kind in kinds]
    nodes = sorted(data.peer, key=lambda n: -n["ms"])[:TOP_KERNELS]
    node_rows = [Row(n["node"], (Bar(n["ms"], PEER_COLOUR, f"{n['op']} {duration(n['ms'])}"),))
                 for n in nodes]
    return (f"<h3>deepc beside {escape(peer)}</h3><p class=\"note\">Time per run by kind of"
            f" work: deepc's kernels (coloured) and {escape(peer)}'s nodes (grey), each the"
            f" median over {data.runs} runs on {data.threads} thread(s), from {escape(peer)}'s"
            " own profiler. Sums of per-node times, not whole-run times.</p>"
            + bar_chart(rows, "compare")
            + f"<h3>{escape(peer)}'s slowest nodes</h3>" + bar_chart(node_rows, "peer"))


def _target(target: Any) -> str:
    rows = []
    for section, values in target.to_dict().items():
        if isinstance(values, dict):
            rows += [(f"{section}.{k}", _value(v)) for k, v in values.items()]
        else:
            rows.append((section, _value(values)))
    return _table(rows)


def _value(v: Any) -> str:
    if isinstance(v, list) and len(v) > 12:
        return " ".join(map(str, v[:12])) + f" … ({len(v)} in all)"
    return v if isinstance(v, str) else json.dumps(v)


def _passes(data: ReportData) -> str:
    if not data.pass_times:
        return '<p class="note">no graph passes at this optimisation level</p>'
    rows = [(name, f"{seconds * 1e3:.1f} ms") for name, seconds in data.pass_times]
    kept = {n.name for n in data.compiled.graph.nodes}
    gone: dict[str, int] = {}
    for name, op in data.onnx_ops.items():
        if name not in kept:
            gone[op] = gone.get(op, 0) + 1
    summary = ", ".join(f"{op} x{n}" for op, n in sorted(gone.items(), key=lambda kv: -kv[1]))
    return (_table(rows, ("pass (in order)", "time"))
            + f'<p class="note">ONNX nodes not in the compiled graph (folded into constants,'
              f" merged or removed): {sum(gone.values())}{': ' if gone else ''}"
              f"{escape(summary)}.</p>")


def _schedules(c: Any) -> str:
    items = []
    for rec in c.records:
        knobs = len(rec.knobs)
        items.append(f"<details><summary>{escape(rec.kernel)} — {escape(rec.source)},"
                     f" {knobs} knob(s), {len(rec.launches)} launch(es)</summary>"
                     f"<pre>{escape(rec.text())}</pre></details>")
    return "".join(items)

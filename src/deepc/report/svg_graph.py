"""The graph as compiled into an SVG picture: one box per kernel (its fused group) holding the
graph nodes it computes, with its name, output shapes, FLOPs and time; the model's inputs and
outputs as pills; arrows for the values between them."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from deepc.report.charts import duration
from deepc.report.graph_layout import Box, place
from deepc.report.kinds import COLOURS, kernel_kind, kind_of

WIDTH = 320  # a kernel box; its text is cut to fit at CHAR_W per character
CHAR_W = 6.6
LINE = 15
PILL = (180, 26)


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def flops_text(flops: float) -> str:
    for unit, scale in (("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if flops >= scale:
            return f"{flops / scale:.1f} {unit}"
    return f"{flops:.0f} FLOP"


def _fit(text: str, width: float) -> str:
    room = int(width / CHAR_W)
    return text if len(text) <= room else text[:room - 1] + "…"


def graph_svg(compiled: Any, info: Mapping[str, Mapping[str, Any]],
              times: Mapping[str, Mapping[str, float]] | None = None,
              onnx_ops: Mapping[str, str] | None = None) -> str:
    """`info`: kernel name -> kernel_trace.kernel_info; `times`: kernel name -> {"ms",
    "share", "gflops"} where the kernels were timed; `onnx_ops`: the ONNX file's node names
    and op types (a node not among them was added by the passes, and is drawn dashed)."""
    graph, kernels = compiled.graph, compiled.kernels
    called = {k.name for k in compiled.plan.calls}
    nodes = {n.name: n for n in graph.nodes}
    producer: dict[str, int] = {name: v for v, name in enumerate(graph.inputs)}
    first_kernel = len(graph.inputs)
    for k, kern in enumerate(kernels):
        for out in kern.outputs:
            producer[out] = first_kernel + k
    first_output = first_kernel + len(kernels)
    edges: list[tuple[int, int, str]] = []
    for k, kern in enumerate(kernels):
        edges += [(producer[i], first_kernel + k, i) for i in dict.fromkeys(kern.inputs)
                  if i in producer]
    edges += [(producer[o], first_output + j, o) for j, o in enumerate(graph.outputs)
              if o in producer]
    sizes = [PILL] * len(graph.inputs) + \
        [(WIDTH, (3 + len(kern.nodes)) * LINE + 12) for kern in kernels] + \
        [PILL] * len(graph.outputs)
    boxes, width, height = place(sizes, [(a, b) for a, b, _ in edges])
    parts = [_edge(boxes[a], boxes[b], f"{value}: {shape_text(graph.types[value].shape)}")
             for a, b, value in edges]
    for v, name in enumerate(graph.inputs):
        parts.append(_pill(boxes[v], f"input {name}", graph.types[name].shape))
    for k, kern in enumerate(kernels):
        parts.append(_kernel(boxes[first_kernel + k], kern, info[kern.name], nodes,
                             (times or {}).get(kern.name), kern.name in called, onnx_ops))
    for j, name in enumerate(graph.outputs):
        parts.append(_pill(boxes[first_output + j], f"output {name}", graph.types[name].shape))
    pad = 8
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width + 2 * pad:.0f}"'
            f' height="{height + 2 * pad:.0f}" viewBox="{-pad} {-pad} {width + 2 * pad:.0f}'
            f' {height + 2 * pad:.0f}" font-family="monospace" font-size="11">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
            ' markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker>'
            f'</defs>{"".join(parts)}</svg>')


def _edge(a: Box, b: Box, label: str) -> str:
    (x1, y1), (x2, y2) = a.bottom, b.top
    bend = max((y2 - y1) / 2, 12)
    return (f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f}'
            f' {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}" fill="none" stroke="#999"'
            f' marker-end="url(#arrow)"><title>{escape(label)}</title></path>')


def _pill(box: Box, label: str, shape: tuple[int, ...]) -> str:
    text = _fit(f"{label} {shape_text(shape)}", box.width - 12)
    return (f'<g class="io"><rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width}"'
            f' height="{box.height}" rx="13" fill="#f4f4f4" stroke="#888"/>'
            f'<text x="{box.x + box.width / 2:.1f}" y="{box.y + 17:.1f}" text-anchor="middle">'
            f'{escape(text)}</text><title>{escape(label)}</title></g>')


def _kernel(box: Box, kern: Any, info: Mapping[str, Any], nodes: Mapping[str, Any],
            timed: Mapping[str, float] | None, called: bool,
            onnx_ops: Mapping[str, str] | None) -> str:
    colour = COLOURS[kernel_kind(kern.ops)]
    outs = ", ".join(shape_text(s) for s in info["outputs"])
    lines = [(kern.name, "bold"), (f"out {outs} · {flops_text(info['flops'])}", "")]
    if not called:
        lines.append(("zero-copy alias: not called", "note"))
    elif timed:
        lines.append((f"{duration(timed['ms'])} · {timed['share']:.1%} · "
                      f"{timed['gflops']:.1f} GFLOP/s", "time"))
    else:
        lines.append(("not timed", "note"))
    dash = "" if called else ' stroke-dasharray="5,3"'
    out = [f'<g class="kernel" data-kernel="{escape(kern.name)}">'
           f'<title>{escape(_tooltip(kern, info, timed))}</title>'
           f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width}" height="{box.height}"'
           f' rx="6" fill="{colour}" fill-opacity="0.13" stroke="{colour}"'
           f' stroke-width="1.6"{dash}/>']
    y = box.y + LINE
    for text, style in lines:
        weight = ' font-weight="bold"' if style == "bold" else ""
        fill = {"note": "#777", "time": "#333"}.get(style, "#000")
        out.append(f'<text x="{box.x + 8:.1f}" y="{y:.1f}"{weight} fill="{fill}">'
                   f'{escape(_fit(text, box.width - 16))}</text>')
        y += LINE
    for name in kern.nodes:
        node = nodes.get(name)
        op = node.op if node is not None else "?"
        node_colour = COLOURS[kind_of(op)]
        onnx_op = (onnx_ops or {}).get(name)
        origin = f"ONNX {onnx_op} node {name}" if onnx_op else f"{name}: added by the passes"
        dash = "" if onnx_op or onnx_ops is None else ' stroke-dasharray="3,2"'
        out.append(f'<g><title>{escape(f"{op}: {origin}")}</title>'
                   f'<rect class="node" x="{box.x + 8:.1f}" y="{y - 10:.1f}"'
                   f' width="{box.width - 16}" height="{LINE - 2}" rx="3" fill="#fff"'
                   f' stroke="{node_colour}"{dash}/><text x="{box.x + 13:.1f}" y="{y:.1f}">'
                   f'<tspan font-weight="bold">{escape(op)}</tspan> '
                   f'{escape(_fit(name, box.width - 32 - CHAR_W * len(op)))}</text></g>')
        y += LINE
    out.append("</g>")
    return "".join(out)


def _tooltip(kern: Any, info: Mapping[str, Any], timed: Mapping[str, float] | None) -> str:
    ins = ", ".join(shape_text(s) for s in info["inputs"])
    lines = [kern.name, f"ops: {', '.join(kern.ops)}", f"inputs: {ins}",
             f"FLOPs: {info['flops']:,}"]
    if timed:
        lines.append(f"{timed['ms']:.4f} ms, {timed['gflops']:.2f} GFLOP/s")
    return "\n".join(lines)

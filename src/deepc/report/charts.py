"""Numbers into SVG charts: the memory plan (arena offsets over the call order, with the
arena's size and its lower bound) and horizontal bar charts (kernel times, deepc beside a
peer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from deepc.lowering.plan import value_bytes

PLOT_W, PLOT_H, LEFT, BOTTOM = 880, 300, 90, 36
HUES = 12  # blocks cycle through this many hues, so neighbours differ


@dataclass(frozen=True)
class Lifetime:
    value: str  # the value that owns the memory (others alias it or overwrite it in place)
    offset: int
    size: int
    first: int  # the call that writes it
    last: int  # the last call that reads it (or writes it, if none reads it)
    sharers: tuple[str, ...] = ()  # aliases and in-place outputs in the same bytes


def lifetimes(compiled: Any) -> list[Lifetime]:
    """Each workspace block of the plan: where it lies and between which calls it lives."""
    plan, graph = compiled.plan, compiled.graph
    links = {**plan.aliases, **plan.inplace}

    def root(value: str) -> str:
        while value in links:
            value = links[value]
        return value

    first: dict[str, int] = {}
    last: dict[str, int] = {}
    sharers: dict[str, list[str]] = {}
    for step, kern in enumerate(plan.calls):
        for value in (*kern.inputs, *kern.outputs):
            r = root(value)
            loc = plan.locations.get(r)
            if loc is None or loc.kind != "workspace":
                continue
            if value in kern.outputs:
                first[r] = min(first.get(r, step), step)
            last[r] = max(last.get(r, step), step)
            if value != r and value not in sharers.setdefault(r, []):
                sharers[r].append(value)
    return [Lifetime(r, plan.locations[r].offset, value_bytes(graph, r), first[r],
                     last[r], tuple(sharers.get(r, ()))) for r in first]


def duration(ms: float) -> str:
    """Milliseconds as text, in microseconds below a tenth of one."""
    return f"{ms:.3f} ms" if ms >= 0.1 else f"{ms * 1e3:.1f} µs"


def human_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def memory_svg(compiled: Any) -> str:
    """Blocks at their offsets (up) over the calls that keep them live (across); the live
    bytes at each call as a line; the arena's size and the lower bound as rules."""
    plan = compiled.plan
    blocks = lifetimes(compiled)
    steps = max(len(plan.calls), 1)
    top = max(plan.workspace_bytes, 1)

    def x(step: float) -> float:
        return LEFT + step * PLOT_W / steps

    def y(offset: float) -> float:
        return 10 + PLOT_H - offset * PLOT_H / top

    parts = []
    for k, b in enumerate(blocks):
        hue = k % HUES * 360 // HUES
        names = ", ".join((b.value, *b.sharers))
        parts.append(f'<rect class="block" x="{x(b.first):.1f}" y="{y(b.offset + b.size):.1f}"'
                     f' width="{max(x(b.last + 1) - x(b.first), 1):.1f}"'
                     f' height="{max(b.size * PLOT_H / top, 0.5):.1f}"'
                     f' fill="hsl({hue},55%,62%)" stroke="#fff" stroke-width="0.5"><title>'
                     f'{escape(names)}\n{human_bytes(b.size)} at offset {b.offset:,}\n'
                     f'live from call {b.first} to {b.last}</title></rect>')
    live = [sum(b.size for b in blocks if b.first <= s <= b.last) for s in range(steps)]
    path = " ".join(f"L{x(s):.1f},{y(v):.1f} L{x(s + 1):.1f},{y(v):.1f}"
                    for s, v in enumerate(live))
    parts.append(f'<path class="live" d="M{x(0):.1f},{y(live[0] if live else 0):.1f} {path}"'
                 ' fill="none" stroke="#222" stroke-width="1.2"><title>bytes live at each'
                 ' call</title></path>')
    # the two rules may coincide: one label at each end
    for value, label, colour, end in ((plan.workspace_bytes, "arena", "#c0392b", True),
                                      (plan.lower_bound_bytes, "lower bound", "#27ae60", False)):
        at = f'x="{LEFT + PLOT_W - 4}" text-anchor="end"' if end else f'x="{LEFT + 4}"'
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y(value):.1f}"'
                     f' y2="{y(value):.1f}" stroke="{colour}" stroke-dasharray="6,4"/>'
                     f'<text {at} y="{y(value) + 13:.1f}" fill="{colour}"'
                     f' font-weight="bold">{label} {human_bytes(value)}</text>')
    parts += _axes(steps, top, x, y)
    return _svg(LEFT + PLOT_W + 20, PLOT_H + BOTTOM + 14, "memory", "".join(parts))


def _axes(steps: int, top: int, x: Any, y: Any) -> list[str]:
    parts = [f'<line x1="{LEFT}" x2="{LEFT}" y1="10" y2="{10 + PLOT_H}" stroke="#444"/>',
             f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{10 + PLOT_H}" y2="{10 + PLOT_H}"'
             ' stroke="#444"/>']
    for frac in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<text x="{LEFT - 6}" y="{y(top * frac) + 4:.1f}" text-anchor="end">'
                     f'{human_bytes(top * frac)}</text>')
    every = max(1, steps // 10)
    for s in range(0, steps, every):
        parts.append(f'<text x="{x(s + 0.5):.1f}" y="{PLOT_H + 26}" text-anchor="middle">'
                     f'{s}</text>')
    parts.append(f'<text x="{LEFT + PLOT_W / 2}" y="{PLOT_H + 44}" text-anchor="middle">'
                 'kernel call (plan order)</text>')
    return parts


@dataclass(frozen=True)
class Bar:
    value: float
    colour: str
    text: str  # shown right of the bar


@dataclass(frozen=True)
class Row:
    label: str
    bars: tuple[Bar, ...]
    tooltip: str = ""


def bar_chart(rows: Sequence[Row], css_class: str, label_w: int = 330,
              bar_w: int = 420) -> str:
    """Rows of one or more horizontal bars, each scaled to the largest value of the chart."""
    top = max((b.value for r in rows for b in r.bars), default=0) or 1.0
    bar_h, gap = 14, 6
    parts, y = [], 4
    for row in rows:
        height = len(row.bars) * bar_h
        label = row.label if len(row.label) <= label_w // 7 else row.label[:label_w // 7 - 1] + "…"
        parts.append(f'<g class="row"><title>{escape(row.tooltip or row.label)}</title>'
                     f'<text x="{label_w - 8}" y="{y + height / 2 + 4:.1f}" text-anchor="end">'
                     f'{escape(label)}</text>')
        for b in row.bars:
            w = max(b.value / top * bar_w, 1)
            parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}"'
                         f' fill="{b.colour}"/><text x="{label_w + w + 6:.1f}"'
                         f' y="{y + bar_h - 4}">{escape(b.text)}</text>')
            y += bar_h
        parts.append("</g>")
        y += gap
    return _svg(label_w + bar_w + 260, y + 4, css_class, "".join(parts))


def _svg(width: float, height: float, css_class: str, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width:.0f}"'
            f' height="{height:.0f}" font-family="sans-serif" font-size="11">{body}</svg>')

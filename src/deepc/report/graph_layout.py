"""A directed acyclic graph into a layered drawing: each vertex's layer (its longest path from
a source), its place in the layer (a few barycentre sweeps against crossings) and its box's
position, given each box's size. Sugiyama's scheme, kept small: no dummy vertices, so an
edge that skips layers is drawn as one curve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SWEEPS = 4  # down and up passes of the barycentre ordering; more rarely changes anything


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def top(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y

    @property
    def bottom(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height


def layers(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Each vertex's layer: 0 for a source, else one more than its deepest predecessor. The
    vertices must be numbered in a topological order (edges go from lower to higher)."""
    layer = [0] * count
    for src, dst in sorted(edges, key=lambda e: e[1]):
        layer[dst] = max(layer[dst], layer[src] + 1)
    return layer


def order_layers(layer: Sequence[int], edges: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The vertices of each layer, left to right: each placed at the mean position of its
    neighbours in the layer above (sweeping down) or below (sweeping up)."""
    rows: list[list[int]] = [[] for _ in range(max(layer, default=-1) + 1)]
    for v, lay in enumerate(layer):
        rows[lay].append(v)
    ups: dict[int, list[int]] = {}
    downs: dict[int, list[int]] = {}
    for src, dst in edges:
        ups.setdefault(dst, []).append(src)
        downs.setdefault(src, []).append(dst)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        span = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
        for r in span:
            where = {v: k for k, v in enumerate(rows[r - 1 if down else r + 1])}
            near = ups if down else downs
            rows[r] = [v for _, _, v in sorted((_centre(near.get(v, []), where, k), k, v)
                                               for k, v in enumerate(rows[r]))]
    return rows


def _centre(neighbours: list[int], where: dict[int, int], k: int) -> float:
    """The mean position of a vertex's neighbours in the next layer; without any there, its
    own position `k` (it stays put)."""
    seen = [where[n] for n in neighbours if n in where]
    return sum(seen) / len(seen) if seen else k


def place(sizes: Sequence[tuple[float, float]], edges: Sequence[tuple[int, int]],
          gap_x: float = 24, gap_y: float = 36) -> tuple[list[Box], float, float]:
    """Boxes for vertices of `sizes` (width, height), layers top to bottom, each layer centred;
    and the drawing's width and height."""
    rows = order_layers(layers(len(sizes), edges), edges)
    widths = [sum(sizes[v][0] for v in row) + gap_x * (len(row) - 1) for row in rows]
    total_w = max(widths, default=0.0)
    boxes: dict[int, Box] = {}
    y = 0.0
    for row, row_w in zip(rows, widths):
        x = (total_w - row_w) / 2
        for v in row:
            w, h = sizes[v]
            boxes[v] = Box(x, y, w, h)
            x += w + gap_x
        y += max((sizes[v][1] for v in row), default=0.0) + gap_y
    return [boxes[v] for v in range(len(sizes))], total_w, max(y - gap_y, 0.0)

"""Execution plan: kernel call order and where every value lives.

Inputs and outputs are the caller's buffers, constants live in the params blob, and every
other value gets an offset in one workspace arena, planned statically:

- a kernel that only reshapes (reshape, identity) is not called: its output is a zero-copy
  alias of its input's memory;
- a concat whose parts are written for it alone is not called either: each part's producer
  writes into its slice of the concat's buffer (`views.py`; strided slices at batch > 1,
  once `with_concat_views` has made the producers index the joined buffer);
- a kernel that may run in place (`inplace.py`) writes its output over an input that dies
  at that kernel;
- values whose lifetimes do not meet share memory (`arena.py` packs them);
- the call order is the graph's or a greedy one that runs first the kernels that free the
  most memory, whichever packs into the smaller arena.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from deepc.ir.graph import Graph
from deepc.lowering.arena import Block, pack, peak_bytes
from deepc.lowering.inplace import inplace_pairs
from deepc.lowering.kernels import Kernel
from deepc.lowering.views import concat_views, widen_parts

ALIGN = 64
ZERO_COPY_OPS = frozenset({"reshape", "identity"})
# uint8 rows packed into little-endian int32 words with no padding are the same bytes
BYTE_WORD_OPS = ZERO_COPY_OPS | {"pack_rows"}


def align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def regions(sizes: Sequence[int], base: int, a: int) -> tuple[list[int], int]:
    """Offsets of consecutive regions of `sizes` from `base`, each starting `a`-aligned, and
    the span they take (a device arena's scratch buffers)."""
    offsets, pos = [], base
    for size in sizes:
        offsets.append(pos)
        pos = align(pos + size, a)
    return offsets, pos - base


@dataclass(frozen=True)
class Location:
    kind: str  # "input" | "output" | "param" | "workspace"
    index: int = 0  # input/output slot
    offset: int = 0  # bytes into params or workspace

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "index": self.index, "offset": self.offset}


@dataclass
class Plan:
    calls: list[Kernel]
    locations: dict[str, Location]
    workspace_bytes: int
    params_bytes: int
    param_order: list[str] = field(default_factory=list)
    naive_bytes: int = 0  # every intermediate value in its own buffer
    lower_bound_bytes: int = 0  # most bytes live at once in the call order: no arena is smaller
    inplace: dict[str, str] = field(default_factory=dict)  # output -> input it overwrites
    aliases: dict[str, str] = field(default_factory=dict)  # zero-copy output -> its input
    # concat part -> (the concat's output, byte offset of the part in it)
    views: dict[str, tuple[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "calls": [{"kernel": k.name, "args": list(k.args), "nodes": list(k.nodes)}
                      for k in self.calls],
            "locations": {k: v.to_dict() for k, v in self.locations.items()},
            "arena_bytes": self.workspace_bytes,
            "arena_lower_bound_bytes": self.lower_bound_bytes,
            "naive_bytes": self.naive_bytes,
            "params_bytes": self.params_bytes,
            "inplace": dict(self.inplace),
            "aliases": dict(self.aliases),
            "views": {k: list(v) for k, v in self.views.items()},
        }


def layout_params(graph: Graph, used: set[str]) -> tuple[dict[str, int], int, list[str]]:
    offsets: dict[str, int] = {}
    pos = 0
    order = sorted(k for k in graph.constants if k in used)
    for name in order:
        offsets[name] = pos
        pos = align(pos + max(int(graph.constants[name].nbytes), 1))
    return offsets, pos, order


def value_bytes(graph: Graph, name: str) -> int:
    return align(max(graph.types[name].nbytes, 1))


@dataclass
class _Arena:
    """Memory for one call order: each value's owner (the value whose memory it uses) and
    the owners' offsets."""

    order: list[Kernel]
    owner: dict[str, str]
    offsets: dict[str, int]
    size: int
    lower_bound: int
    inplace: dict[str, str]


def _fixed(graph: Graph, kernels: Sequence[Kernel]
           ) -> tuple[dict[str, Location], int, list[str], dict[str, str]]:
    """The caller's and the params blob's locations, the blob's size and order, and the
    zero-copy aliases."""
    locations: dict[str, Location] = {}
    for k, name in enumerate(graph.inputs):
        locations[name] = Location("input", k)
    for k, name in enumerate(graph.outputs):
        locations[name] = Location("output", k)
    used = {a for kern in kernels for a in kern.args}
    offsets, params_bytes, param_order = layout_params(graph, used)
    for name, off in offsets.items():
        locations[name] = Location("param", offset=off)
    aliases = {k.outputs[0]: k.inputs[0] for k in kernels if is_zero_copy(graph, k, locations)}
    return locations, params_bytes, param_order, aliases


def with_concat_views(graph: Graph, kernels: Sequence[Kernel]) -> list[Kernel]:
    """`kernels` with the producers of strided concat parts (a concat at batch > 1) writing
    into their slices of the joined buffer (views.py), so that make_plan calls no copy."""
    locations, _, _, aliases = _fixed(graph, kernels)
    return widen_parts(graph, kernels, concat_views(graph, kernels, locations, aliases, True))


def make_plan(graph: Graph, kernels: Sequence[Kernel]) -> Plan:
    locations, params_bytes, param_order, aliases = _fixed(graph, kernels)
    views = concat_views(graph, kernels, locations, aliases)
    joined = {concat for concat, _ in views.values()}
    # a concat's output is its parts' memory: neither it nor a zero-copy alias is called
    called = [k for k in kernels if not (len(k.outputs) == 1 and (
        k.outputs[0] in aliases or k.outputs[0] in joined))]
    owner = {**aliases, **{part: concat for part, (concat, _) in views.items()}}
    best: _Arena | None = None
    for order in (called, memory_order(graph, called, owner, locations)):
        arena = _assign(graph, order, owner, locations)
        if best is None or arena.size < best.size:
            best = arena
    assert best is not None
    shift = {part: off for part, (_, off) in views.items()}
    for kern in kernels:
        for out in kern.outputs:
            if out in locations:
                continue
            root, off = _owner_of(best.owner, out), _shift_of(best.owner, shift, out)
            base = locations.get(root) or Location("workspace", offset=best.offsets[root])
            locations[out] = replace(base, offset=base.offset + off)
    naive = sum(value_bytes(graph, o) for k in kernels for o in k.outputs
                if o not in graph.outputs)
    return Plan(best.order, locations, best.size, params_bytes, param_order, naive,
                best.lower_bound, best.inplace, aliases, views)


def is_zero_copy(graph: Graph, kern: Kernel, fixed: dict[str, Location]) -> bool:
    """A kernel that copies one value unchanged in row-major order into an intermediate."""
    if not kern.ops or any(op not in BYTE_WORD_OPS for op in kern.ops):
        return False
    # aliases live in the arena or the params blob: the caller's buffers keep one name each
    if len(kern.inputs) != 1 or len(kern.outputs) != 1 or kern.outputs[0] in fixed:
        return False
    source = fixed.get(kern.inputs[0])
    if source is not None and source.kind != "param":
        return False
    src, dst = graph.types[kern.inputs[0]], graph.types[kern.outputs[0]]
    words = "pack_rows" in kern.ops and src.dtype == "uint8" and dst.dtype == "int32"
    return src.nbytes == dst.nbytes and (src.dtype == dst.dtype or words)


def _owner_of(owner: dict[str, str], value: str) -> str:
    while value in owner:
        value = owner[value]
    return value


def _shift_of(owner: dict[str, str], shift: dict[str, int], value: str) -> int:
    """Bytes from the start of `value`'s owner's memory to `value` (a concat part's offset,
    summed through concats that are parts of others)."""
    total = 0
    while value in owner:
        total += shift.get(value, 0)
        value = owner[value]
    return total


def _assign(graph: Graph, order: Sequence[Kernel], aliases: dict[str, str],
            fixed: dict[str, Location]) -> _Arena:
    """Owners (zero-copy aliases and concat views, then in-place outputs) and arena offsets
    for one order. A concat's memory is live from its first part's write."""
    owner = dict(aliases)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, kern in enumerate(order):
        for a in kern.inputs:
            last[_owner_of(owner, a)] = step
        for o in kern.outputs:
            first.setdefault(_owner_of(owner, o), step)
    inplace: dict[str, str] = {}
    for step, kern in enumerate(order):
        if not kern.func.attrs.get("may_alias"):
            continue
        for i, o in inplace_pairs(kern.func):
            src, out = kern.args[i], kern.args[o]
            root = _owner_of(owner, src)
            if (root in fixed or out in fixed or out in owner or root not in first
                    or last.get(root) != step
                    or any(_owner_of(owner, a) == root for a in kern.args if a != src)):
                continue
            owner[out] = root
            inplace[out] = src
            last[root] = max(step, last.get(out, step))
    roots = [r for r in dict.fromkeys(_owner_of(owner, o) for kern in order for o in kern.outputs)
             if r not in fixed]
    blocks = [Block(first[r], max(first[r], last.get(r, first[r])), value_bytes(graph, r))
              for r in roots]
    offsets, size = pack(blocks)
    return _Arena(list(order), owner, dict(zip(roots, offsets)), size, peak_bytes(blocks),
                  inplace)


def memory_order(graph: Graph, kernels: Sequence[Kernel], owner: dict[str, str],
                 fixed: dict[str, Location]) -> list[Kernel]:
    """A topological order that, among the kernels ready to run, picks the one that grows
    the live memory least (frees the most), the earliest in the graph's order on ties.
    `owner` maps a value to the value whose memory it uses (zero-copy aliases, concat parts)."""
    producers: dict[str, set[int]] = {}  # a concat's memory has one per part
    for k, kern in enumerate(kernels):
        for o in kern.outputs:
            producers.setdefault(_owner_of(owner, o), set()).add(k)
    reads = [{_owner_of(owner, a) for a in kern.inputs} for kern in kernels]
    readers: dict[str, int] = {}
    for values in reads:
        for v in values:
            readers[v] = readers.get(v, 0) + 1
    deps = [{p for v in values for p in producers.get(v, ())} for values in reads]
    waiting = [len(d) for d in deps]
    after: list[list[int]] = [[] for _ in kernels]
    for k, d in enumerate(deps):
        for p in d:
            after[p].append(k)

    def growth(k: int) -> int:
        grown = sum(value_bytes(graph, o) for o in kernels[k].outputs
                    if _owner_of(owner, o) not in fixed)
        freed = sum(value_bytes(graph, v) for v in reads[k]
                    if readers[v] == 1 and v in producers and v not in fixed)
        return grown - freed

    ready = [(growth(k), k) for k in range(len(kernels)) if waiting[k] == 0]
    heapq.heapify(ready)
    order: list[Kernel] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(kernels[k])
        for v in reads[k]:
            readers[v] -= 1
        for s in after[k]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, (growth(s), s))
        # a kernel's growth changes as others free its inputs' last readers
        ready = [(growth(j), j) for _, j in ready]
        heapq.heapify(ready)
    return order

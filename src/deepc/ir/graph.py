"""The graph IR: immutable nodes over named, typed values, in topological order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from deepc.ir.types import TensorType

AttrValue = int | float | str | bool | tuple[Any, ...] | None


def _freeze(value: Any) -> AttrValue:
    if isinstance(value, np.ndarray):
        return tuple(_freeze(v) for v in value.tolist()) if value.ndim else _freeze(value.item())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class Attrs(Mapping[str, AttrValue]):
    """A frozen, hashable attribute mapping with plain Python values (tuples, not lists)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items = dict(sorted((k, _freeze(v)) for k, v in pairs))

    def __getitem__(self, key: str) -> AttrValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def __repr__(self) -> str:
        return f"Attrs({self._items!r})"

    def with_(self, **changes: Any) -> Attrs:
        return Attrs({**self._items, **changes})


@dataclass(frozen=True)
class Node:
    """One operator application. An omitted optional input is the empty name ""."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Attrs = field(default_factory=Attrs)
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not isinstance(self.attrs, Attrs):
            object.__setattr__(self, "attrs", Attrs(self.attrs))

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


@dataclass(frozen=True, eq=False)
class Graph:
    """A whole model: inputs, outputs, nodes (topologically ordered), types and constants.

    Every value name has a type in `types`. Constants (weights and folded values) are numpy
    arrays keyed by value name; they are never produced by a node.
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    types: Mapping[str, TensorType]
    constants: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "types", MappingProxyType(dict(self.types)))
        object.__setattr__(self, "constants", MappingProxyType(dict(self.constants)))

    def replace(self, **changes: Any) -> Graph:
        return replace(self, **changes)

    def type_of(self, value: str) -> TensorType:
        return self.types[value]

    def producers(self) -> dict[str, Node]:
        return {out: node for node in self.nodes for out in node.outputs if out}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in node.inputs:
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    @property
    def param_bytes(self) -> int:
        return sum(int(c.nbytes) for c in self.constants.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return (
            (self.name, self.inputs, self.outputs, self.nodes) ==
            (other.name, other.inputs, other.outputs, other.nodes)
            and dict(self.types) == dict(other.types)
            and self.constants.keys() == other.constants.keys()
            and all(np.array_equal(self.constants[k], other.constants[k]) for k in self.constants)
        )

    __hash__ = None  # type: ignore[assignment]

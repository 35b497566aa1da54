"""GraphBuilder: assembles a graph IR node by node, typing each node as it is added.

Nodes whose inputs are all constants and whose output is small (shape arithmetic, as
exporters produce around Reshape) are evaluated at once with the op's numpy reference, so
shape-only subgraphs resolve to constants during import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from deepc.errors import NeedsConstantError, ShapeError
from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.types import TensorType
from deepc.ops import get_op

FOLD_MAX_ELEMENTS = 4096


class GraphBuilder:
    def __init__(self, name: str = "model"):
        self.name = name
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, np.ndarray] = {}
        # sequence values, resolved at import to their tensors' names (ONNX Sequence* ops)
        self.sequences: dict[str, list[str]] = {}
        self._counter = 0

    # -- values ---------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        while True:
            self._counter += 1
            name = f"{hint}:{self._counter}"
            if name not in self.types:
                return name

    def add_input(self, name: str, ty: TensorType) -> str:
        self.inputs.append(name)
        self.types[name] = ty
        return name

    def add_constant(self, array: Any, name: str | None = None, dtype: Any = None) -> str:
        arr = np.asarray(array, dtype=dtype)
        name = name or self.fresh("const")
        self.constants[name] = arr
        self.types[name] = TensorType.of(arr)
        return name

    def type(self, name: str) -> TensorType:
        return self.types[name]

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name) if name else None

    def is_const(self, name: str) -> bool:
        return name in self.constants

    # -- nodes ----------------------------------------------------------------------------
    def emit(
        self,
        op: str,
        inputs: Sequence[str],
        attrs: Mapping[str, Any] | None = None,
        *,
        outputs: Sequence[str] | None = None,
        num_outputs: int = 1,
        name: str = "",
        fold: bool = True,
    ) -> tuple[str, ...]:
        """Add one node and return its output names (fresh ones unless `outputs` is given)."""
        opdef = get_op(op)
        frozen = Attrs(attrs or {})
        in_types = [self.types[i] if i else None for i in inputs]
        try:
            out_types = opdef.infer_types(in_types, frozen)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            shapes = ", ".join(str(t) if t else "-" for t in in_types)
            raise ShapeError(
                f"node {name or op!r} ({op}): inputs {shapes} do not fit: {exc}"
            ) from None
        if outputs is None:
            outputs = [self.fresh(op) for _ in range(max(num_outputs, len(out_types)))]
        outputs = tuple(outputs)
        if fold and self._foldable(inputs, out_types):
            values = opdef.evaluate([self.constants[i] if i else None for i in inputs], frozen)
            for out, value, ty in zip(outputs, values, out_types):
                if out:
                    self.constants[out] = np.asarray(value).astype(
                        value.dtype if ty.dtype == "string" else ty.dtype, copy=False)
                    self.types[out] = ty
            return outputs
        for out, ty in zip(outputs, out_types):
            if out:
                self.types[out] = ty
        self.nodes.append(Node(op, tuple(inputs), outputs, frozen, name))
        return outputs

    def emit1(self, op: str, inputs: Sequence[str], attrs: Mapping[str, Any] | None = None,
              *, output: str | None = None, name: str = "") -> str:
        return self.emit(op, inputs, attrs, outputs=None if output is None else [output],
                         name=name)[0]

    def _foldable(self, inputs: Sequence[str], out_types: Sequence[TensorType]) -> bool:
        present = [i for i in inputs if i]
        return (
            bool(present)
            and all(i in self.constants for i in present)
            and sum(t.size for t in out_types) <= FOLD_MAX_ELEMENTS
        )

    def require_const(self, name: str, what: str, node: str) -> np.ndarray:
        value = self.const(name)
        if value is None:
            raise NeedsConstantError(
                f"node {node!r}: {what} must be known at compile time but is computed at run "
                "time; fix the dynamic dimensions with --input-shape or re-export with static "
                "shapes", name)
        return value

    def build(self) -> Graph:
        """The finished graph, keeping only the constants and types something still uses."""
        used = {i for n in self.nodes for i in n.inputs if i} | set(self.outputs)
        constants = {k: v for k, v in self.constants.items() if k in used}
        live = used | set(self.inputs) | {o for n in self.nodes for o in n.outputs if o}
        types = {k: v for k, v in self.types.items() if k in live}
        return Graph(self.name, self.inputs, self.outputs, self.nodes, types, constants)

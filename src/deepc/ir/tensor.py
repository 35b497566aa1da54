"""Tensor expressions: the algorithm of each op as index formulas, with no loops yet.

    A = placeholder((n, k), "float32", "A")
    B = placeholder((k, m), "float32", "B")
    r = reduce_axis(k, "r")
    C = compute((n, m), lambda i, j: rsum(A[i, r] * B[r, j], r), "C")

A compute tensor's body is an expression of its axis variables; a reduction may only be the
outermost node of a body. Tensors are stages of a DAG and compare by identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np

from deepc.ir.expr import (
    INDEX,
    AddressOf,
    Binary,
    Call,
    Cast,
    Const,
    Expr,
    FlatLoad,
    Intrin,
    Lane,
    Load,
    Pack,
    Select,
    Unary,
    Var,
    as_expr,
    const,
)

REDUCE_COMBINERS = ("sum", "prod", "max", "min")
# a stage tag: the kernel holding it keeps float operations in the order written (sums over
# their terms in turn), where a result must match another library's loop to the bit; its
# PrimFunc carries the attribute of the same name, which schedules and backends read
IN_ORDER = "in_order"
# a stage tag: computed once into a buffer where a reduction reads it, not inlined into the
# reduction's loop (as a conv's padding is): a gather-heavy value read by two stages
MATERIALIZED = "materialized"


@dataclass(frozen=True)
class IterVar(Var):
    """A reduction axis: an index variable ranging over [0, extent)."""

    extent: int = 0


@dataclass(frozen=True)
class Reduce(Expr):
    combiner: str
    body: Expr
    axes: tuple[IterVar, ...]

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.body.dtype

    def identity(self) -> Const:
        return reduce_identity(self.combiner, self.dtype)


def reduce_identity(combiner: str, dtype: str) -> Const:
    if combiner == "sum":
        return const(0, dtype)
    if combiner == "prod":
        return const(1, dtype)
    if dtype == "bool":
        return const(combiner == "min", dtype)
    if dtype.startswith(("int", "uint")):
        info = ml_dtypes.iinfo(dtype)
        return const(info.min if combiner == "max" else info.max, dtype)
    return const(-np.inf if combiner == "max" else np.inf, dtype)


@dataclass(frozen=True, eq=False)
class ExternOp:
    """An op whose loops are written by hand (sorts, recurrences): `build(ins, outs) -> Stmt`
    receives loop-IR buffers for inputs and outputs."""

    name: str
    inputs: tuple[Tensor, ...]
    build: Callable[..., Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[Tensor, ...] = ()  # set once by `extern`


@dataclass(frozen=True, eq=False)
class Tensor:
    """A placeholder (body None, no extern), a compute stage, or an extern op's output."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    axes: tuple[Var, ...] = ()
    body: Expr | None = None
    extern: ExternOp | None = None
    extern_index: int = 0
    tag: str = ""  # what the stage is, for lowering and schedules: "pad", ...

    def __getitem__(self, idx: Any) -> Load:
        idx = idx if isinstance(idx, tuple) else (idx,)
        if len(idx) != len(self.shape):
            raise IndexError(f"{self.name}: {len(idx)} indices for rank {len(self.shape)}")
        return Load(self, tuple(as_expr(i) for i in idx))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_placeholder(self) -> bool:
        return self.body is None and self.extern is None

    @property
    def is_reduction(self) -> bool:
        return isinstance(self.body, Reduce)

    def inputs(self) -> list[Tensor]:
        """The tensors this stage reads, in first-use order."""
        if self.extern is not None:
            return list(self.extern.inputs)
        return [] if self.body is None else tensors_read(self.body)

    def __repr__(self) -> str:
        kind = "placeholder" if self.is_placeholder else "extern" if self.extern else "compute"
        return f"Tensor({self.name!r}, {self.shape}, {self.dtype}, {kind})"


def placeholder(shape: Sequence[int], dtype: str, name: str) -> Tensor:
    return Tensor(name, tuple(int(s) for s in shape), dtype)


def compute(shape: Sequence[int], fn: Callable[..., Any], name: str,
            dtype: str | None = None, tag: str = "") -> Tensor:
    shape = tuple(int(s) for s in shape)
    axes = tuple(Var(f"{name}.i{k}") for k in range(len(shape)))
    body = as_expr(fn(*axes))
    if dtype is not None and body.dtype != dtype:
        body = body.astype(dtype)
    _check_reduce_at_top(body, name)
    return Tensor(name, shape, body.dtype, axes, body, tag=tag)


def extern(name: str, inputs: Sequence[Tensor], outs: Sequence[tuple[Sequence[int], str]],
           build: Callable[..., Any], **attrs: Any) -> list[Tensor]:
    op = ExternOp(name, tuple(inputs), build, attrs)
    tensors = [Tensor(f"{name}.{k}" if len(outs) > 1 else name, tuple(int(s) for s in shape),
                      dtype, extern=op, extern_index=k) for k, (shape, dtype) in enumerate(outs)]
    object.__setattr__(op, "outputs", tuple(tensors))  # the op and its outputs refer to each other
    return tensors


def reduce_axis(extent: int, name: str) -> IterVar:
    return IterVar(name, extent=int(extent))


def _reduce(combiner: str, body: Any, axes: IterVar | Iterable[IterVar]) -> Reduce:
    axes = (axes,) if isinstance(axes, IterVar) else tuple(axes)
    return Reduce(combiner, as_expr(body), axes)


def rsum(body: Any, axes: IterVar | Iterable[IterVar]) -> Reduce:
    return _reduce("sum", body, axes)


def rprod(body: Any, axes: IterVar | Iterable[IterVar]) -> Reduce:
    return _reduce("prod", body, axes)


def rmax(body: Any, axes: IterVar | Iterable[IterVar]) -> Reduce:
    return _reduce("max", body, axes)


def rmin(body: Any, axes: IterVar | Iterable[IterVar]) -> Reduce:
    return _reduce("min", body, axes)


def _check_reduce_at_top(body: Expr, name: str) -> None:
    inner = body.body if isinstance(body, Reduce) else body
    for node in walk(inner):
        if isinstance(node, Reduce):
            raise ValueError(f"{name}: a reduction must be the outermost node of a body; "
                             "compute it as its own stage")


def walk(expr: Expr) -> Iterable[Expr]:
    """Every node of an expression tree, parents before children (not into other tensors)."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(reversed(children(e)))


def children(e: Expr) -> list[Expr]:
    if isinstance(e, Binary):
        return [e.a, e.b]
    if isinstance(e, Unary | Cast):
        return [e.x]
    if isinstance(e, Call | Intrin):
        return list(e.args)
    if isinstance(e, FlatLoad | AddressOf):
        return [e.offset]
    if isinstance(e, Lane):
        return [e.x]
    if isinstance(e, Pack):
        return list(e.lanes)
    if isinstance(e, Select):
        return [e.cond, e.t, e.f]
    if isinstance(e, Load):
        return list(e.indices)
    if isinstance(e, Reduce):
        return [e.body]
    return []


def tensors_read(expr: Expr) -> list[Tensor]:
    seen: dict[int, Tensor] = {}
    for node in walk(expr):
        if isinstance(node, Load) and isinstance(node.source, Tensor):
            seen.setdefault(id(node.source), node.source)
    return list(seen.values())


def stages(outputs: Sequence[Tensor]) -> list[Tensor]:
    """All tensors reachable from `outputs`, producers before consumers."""
    order: list[Tensor] = []
    done: set[int] = set()

    def visit(t: Tensor) -> None:
        if id(t) in done:
            return
        done.add(id(t))
        for src in t.inputs():
            visit(src)
        order.append(t)

    for t in outputs:
        visit(t)
    return order


def index_const(v: int) -> Const:
    return Const(int(v), INDEX)

"""The loop IR: functions over buffers made of loops, stores, allocations and conditions.

Every backend consumes this one IR. Loops start at 0 and step by 1 (all that schedule
primitives make or transform; see For.start for the exception); a loop's kind says how a
backend runs it (serial, parallel over threads, as vector lanes, unrolled, or bound to a GPU
block/thread axis). Buffers carry a memory scope. Indices stay multi-dimensional; backends
flatten them row-major.

Tiled GPU kernels add: scalar lets, vector stores (with FlatLoad/Pack/Lane expressions),
loops from an expression to an expression by a stride (a split-K chunk's k steps),
compile-time data tables (an Allocate with `data`, scope "constant" where a warp reads
them uniformly) and the function attribute "launch_bounds" = (threads, min_blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from math import prod
from typing import Any

from deepc.ir.expr import Expr, Load, Var, as_expr


class ForKind(Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    GPU_BLOCK = "blockIdx"
    GPU_THREAD = "threadIdx"
    PIPELINED = "pipelined"


# lanes: registers of partial sums that iterations a fixed distance apart update (FPGA)
SCOPES = ("global", "shared", "local", "bram", "constant", "lanes")


@dataclass(frozen=True)
class Buffer:
    name: str
    shape: tuple[int, ...]
    dtype: str
    scope: str = "global"

    def __getitem__(self, idx: Any) -> Load:
        idx = idx if isinstance(idx, tuple) else (idx,)
        return Load(self, tuple(as_expr(i) for i in idx))

    @property
    def size(self) -> int:
        return prod(self.shape)


class Stmt:
    __slots__ = ()


@dataclass(frozen=True)
class For(Stmt):
    var: Var
    extent: int | Expr  # the exclusive bound of `var` (the trip count from 0 by 1)
    kind: ForKind
    body: Stmt
    thread_axis: str = ""  # "x" | "y" | "z" for GPU kinds
    # var = start, start + step, ... < extent. Only kernels built for a launch (the K loop
    # of a tiled GEMM, a warp's lanes striding a reduction) use them; no primitive splits
    # such a loop
    start: int | Expr = 0
    step: int = 1


@dataclass(frozen=True)
class Store(Stmt):
    buffer: Buffer
    indices: tuple[Expr, ...]
    value: Expr


@dataclass(frozen=True)
class Allocate(Stmt):
    """`buffer` lives for `body`. With `data` it is a read-only table of those values (row
    major), which a C-like backend declares once per module."""

    buffer: Buffer
    body: Stmt
    data: tuple[int | float, ...] | None = None


@dataclass(frozen=True)
class LetStmt(Stmt):
    """`var` (any dtype, vectors included) bound to `value` for `body`."""

    var: Var
    value: Expr
    body: Stmt


@dataclass(frozen=True)
class VectorStore(Stmt):
    """Store the vector `value` to consecutive elements from row-major `offset`."""

    buffer: Buffer
    offset: Expr
    value: Expr


@dataclass(frozen=True)
class Seq(Stmt):
    stmts: tuple[Stmt, ...]


@dataclass(frozen=True)
class IfThenElse(Stmt):
    cond: Expr
    then: Stmt
    otherwise: Stmt | None = None


@dataclass(frozen=True)
class Evaluate(Stmt):
    """An intrinsic call for its effect, e.g. `barrier`."""

    intrinsic: str
    args: tuple[Expr, ...] = ()


@dataclass(frozen=True)
class PrimFunc:
    name: str
    params: tuple[Buffer, ...]
    body: Stmt
    attrs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_body(self, body: Stmt) -> PrimFunc:
        return PrimFunc(self.name, self.params, body, dict(self.attrs))


def seq(*stmts: Stmt | None) -> Stmt:
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        flat.extend(s.stmts if isinstance(s, Seq) else [s])
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))


def stmt_children(s: Stmt) -> list[Stmt]:
    if isinstance(s, For | Allocate | LetStmt):
        return [s.body]
    if isinstance(s, Seq):
        return list(s.stmts)
    if isinstance(s, IfThenElse):
        return [s.then] + ([s.otherwise] if s.otherwise is not None else [])
    return []


def walk_stmts(s: Stmt) -> list[Stmt]:
    out: list[Stmt] = []
    stack = [s]
    while stack:
        x = stack.pop()
        out.append(x)
        stack.extend(reversed(stmt_children(x)))
    return out


def loops(s: Stmt) -> list[For]:
    return [x for x in walk_stmts(s) if isinstance(x, For)]


def find_loop(s: Stmt, name: str) -> For:
    for loop in loops(s):
        if loop.var.name == name:
            return loop
    raise KeyError(f"no loop named {name!r}")

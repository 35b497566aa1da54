"""Small loop-IR builders shared by the GPU kernel primitives (tiled GEMM, split-K sum, warp
reduction): named index variables, lets, unrolled loops, block/thread bindings and the
decoding of a flat index into the loop variables of the axes it spans."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deepc.ir.expr import Expr, Var, binary
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    LetStmt,
    PrimFunc,
    Stmt,
    seq,
    walk_stmts,
)

Axes = tuple[tuple[Var, int], ...]


def v(name: str) -> Var:
    return Var(name)


def shr(x: Expr, s: int) -> Expr:
    return binary("shr", x, s)


def shl(x: Expr, s: int) -> Expr:
    return binary("shl", x, s)


def mask(x: Expr, m: int) -> Expr:
    return binary("bitand", x, m)


def lets(pairs: Sequence[tuple[Var, Expr]], body: Stmt) -> Stmt:
    for var, value in reversed(pairs):
        body = LetStmt(var, value, body)
    return body


def strides(axes: Axes) -> dict[Var, int]:
    """Each axis's stride in the axes' row-major flat index."""
    out, stride = {}, 1
    for var, extent in reversed(axes):
        out[var] = stride
        stride *= extent
    return out


def decode(axes: Axes, flat: Expr) -> list[tuple[Var, Expr]]:
    """The axes' loop variables from their row-major flat index (innermost first)."""
    flat_strides = strides(axes)
    return [(var, binary("mod", flat if flat_strides[var] == 1
                         else binary("floordiv", flat, flat_strides[var]), extent))
            for var, extent in reversed(axes)]


def unrolled(name: str, extent: int, body: Callable[[Var], Stmt]) -> Stmt:
    """for name in 0..extent, unrolled (a register array indexed by it stays in registers)."""
    var = v(name)
    return For(var, extent, ForKind.UNROLLED, body(var))


def local(name: str, shape: tuple[int, ...], dtype: str, body: Stmt) -> Stmt:
    return Allocate(Buffer(name, shape, dtype, "local"), body)


def bind(axes: Sequence[tuple[str, int, str]], body: Stmt) -> Stmt:
    """(var, extent, "blockIdx.x" ...) loops around `body`, outermost first."""
    for name, extent, tag in reversed(axes):
        kind, axis = tag.split(".")
        body = For(v(name), extent, ForKind(kind), body, axis)
    return body


def launch(func: PrimFunc) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The grid and block a function's bound loops declare (1 on an unbound axis)."""
    dims = {"blockIdx": [1, 1, 1], "threadIdx": [1, 1, 1]}
    for s in walk_stmts(func.body):
        if isinstance(s, For) and s.kind in (ForKind.GPU_BLOCK, ForKind.GPU_THREAD):
            dims[s.kind.value]["xyz".index(s.thread_axis)] = int(s.extent)  # type: ignore[arg-type]
    g, b = dims["blockIdx"], dims["threadIdx"]
    return (g[0], g[1], g[2]), (b[0], b[1], b[2])


def kernel(func: PrimFunc, body: Stmt, name: str = "", **attrs: object) -> PrimFunc:
    """`func` with a new body (and name); `attrs` replace its attributes (None drops one)."""
    merged = {**func.attrs, **attrs}
    return PrimFunc(name or func.name, func.params,
                    body, {k: x for k, x in merged.items() if x is not None})


__all__ = ["Axes", "bind", "decode", "kernel", "launch", "lets", "local", "mask", "seq", "shl",
           "shr", "unrolled", "v"]

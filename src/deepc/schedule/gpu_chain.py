"""The parallel chain of a GPU stage: its perfectly nested outer loops whose iterations write
disjoint global elements (one output element per iteration), which the GPU schedules spread
over blocks and threads."""

from __future__ import annotations

from deepc.ir.expr import Var
from deepc.ir.loop import For, Stmt, Store, walk_stmts
from deepc.ir.tensor import walk


def uses(e: object, v: Var) -> bool:
    return any(isinstance(x, Var) and x == v for x in walk(e))  # type: ignore[arg-type]


def parallel_chain(stage: Stmt) -> list[For]:
    """The perfectly nested outer loops whose iterations write disjoint global elements."""
    chain: list[For] = []
    s = stage
    while isinstance(s, For):
        stores = [x for x in walk_stmts(s.body) if isinstance(x, Store)
                  and x.buffer.scope != "local"]
        if not stores or not all(any(uses(i, s.var) for i in x.indices) for x in stores):
            break
        chain.append(s)
        s = s.body
    return chain

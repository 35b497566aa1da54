"""Statement rewriting helpers for schedule primitives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from deepc.ir.expr import Expr, Var
from deepc.ir.loop import (
    Allocate,
    Evaluate,
    For,
    IfThenElse,
    LetStmt,
    Seq,
    Stmt,
    Store,
    VectorStore,
)
from deepc.ir.rewrite import map_expr, substitute


def map_stmt(s: Stmt, fn: Callable[[Stmt], Stmt | None]) -> Stmt:
    """Rebuild `s` bottom-up; `fn` may replace any statement (children already rebuilt)."""
    if isinstance(s, For):
        new: Stmt = replace(s, body=map_stmt(s.body, fn))
    elif isinstance(s, Allocate):
        new = Allocate(s.buffer, map_stmt(s.body, fn), s.data)
    elif isinstance(s, LetStmt):
        new = LetStmt(s.var, s.value, map_stmt(s.body, fn))
    elif isinstance(s, Seq):
        new = Seq(tuple(map_stmt(x, fn) for x in s.stmts))
    elif isinstance(s, IfThenElse):
        new = IfThenElse(s.cond, map_stmt(s.then, fn),
                         None if s.otherwise is None else map_stmt(s.otherwise, fn))
    else:
        new = s
    out = fn(new)
    return new if out is None else out


def map_exprs(s: Stmt, fn: Callable[[Expr], Expr]) -> Stmt:
    """Apply `fn` to every expression held by a statement tree."""

    def visit(x: Stmt) -> Stmt | None:
        if isinstance(x, Store):
            return Store(x.buffer, tuple(fn(i) for i in x.indices), fn(x.value))
        if isinstance(x, LetStmt):
            return LetStmt(x.var, fn(x.value), x.body)
        if isinstance(x, VectorStore):
            return VectorStore(x.buffer, fn(x.offset), fn(x.value))
        if isinstance(x, IfThenElse):
            return IfThenElse(fn(x.cond), x.then, x.otherwise)
        if isinstance(x, Evaluate):
            return Evaluate(x.intrinsic, tuple(fn(a) for a in x.args))
        return None

    return map_stmt(s, visit)


def substitute_stmt(s: Stmt, mapping: Mapping[Var, Expr]) -> Stmt:
    return map_exprs(s, lambda e: substitute(e, mapping))


def rewrite_loads(s: Stmt, fn: Callable[[Expr], Expr | None]) -> Stmt:
    return map_exprs(s, lambda e: map_expr(e, fn))

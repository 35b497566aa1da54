"""Expression rewriting: bottom-up mapping, variable substitution, inlining of stages."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from deepc.ir.expr import AddressOf, Binary, Call, Cast, Expr, Load, Select, Unary, Var, binary
from deepc.ir.tensor import Reduce, Tensor


def map_expr(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuild `expr` bottom-up; `fn(node)` (children already rebuilt) may return a
    replacement, or None to keep the node. Shared subtrees are rebuilt once."""
    memo: dict[int, Expr] = {}

    def go(e: Expr) -> Expr:
        key = id(e)
        if key in memo:
            return memo[key]
        if isinstance(e, Binary):
            a, b = go(e.a), go(e.b)
            new: Expr = e if (a is e.a and b is e.b) else _rebinary(e, a, b)
        elif isinstance(e, Unary):
            x = go(e.x)
            new = e if x is e.x else Unary(e.op, x)
        elif isinstance(e, Cast):
            x = go(e.x)
            new = e if x is e.x else Cast(e.to, x)
        elif isinstance(e, Call):
            args = tuple(go(a) for a in e.args)
            new = e if all(a is b for a, b in zip(args, e.args)) else Call(e.func, args, e.dtype)
        elif isinstance(e, Select):
            c, t, f = go(e.cond), go(e.t), go(e.f)
            new = e if (c is e.cond and t is e.t and f is e.f) else Select(c, t, f)
        elif isinstance(e, Load):
            idx = tuple(go(i) for i in e.indices)
            new = e if all(a is b for a, b in zip(idx, e.indices)) else Load(e.source, idx)
        elif isinstance(e, AddressOf):  # a prefetch's operand follows its loops' rewrites
            off = go(e.offset)
            new = e if off is e.offset else AddressOf(e.source, off, e.dtype)
        elif isinstance(e, Reduce):
            body = go(e.body)
            new = e if body is e.body else Reduce(e.combiner, body, e.axes)
        else:
            new = e
        out = fn(new)
        result = new if out is None else out
        memo[key] = result
        return result

    return go(expr)


def _rebinary(e: Binary, a: Expr, b: Expr) -> Expr:
    return binary(e.op, a, b)  # re-folds constants in index arithmetic


def substitute(expr: Expr, mapping: Mapping[Var, Expr]) -> Expr:
    if not mapping:
        return expr
    return map_expr(expr, lambda e: mapping.get(e) if isinstance(e, Var) else None)


def inline_stage(tensor: Tensor, indices: tuple[Expr, ...]) -> Expr:
    """The body of a non-reduction compute stage evaluated at `indices`."""
    assert tensor.body is not None and not tensor.is_reduction
    return substitute(tensor.body, dict(zip(tensor.axes, indices)))


def inline(expr: Expr, should_inline: Callable[[Tensor], bool]) -> Expr:
    """Replace loads of inlinable stages by their bodies, transitively."""

    def fn(e: Expr) -> Expr | None:
        if isinstance(e, Load) and isinstance(e.source, Tensor):
            t = e.source
            if t.body is not None and not t.is_reduction and should_inline(t):
                return inline(inline_stage(t, e.indices), should_inline)
        return None

    return map_expr(expr, fn)

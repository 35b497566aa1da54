"""A grouped convolution's output-channel loop to (group, channel within the group), so that
the stage reads as one matrix product per group.

    for n, m in 0..128, oh, ow { acc = 0
      for rc, kh, kw { acc += x[n, m // 4 * 4 + rc, ..] * w[m, rc, kh, kw] }; y[n, m, ..] = f(acc) }
split_groups ->
    for n, m_g in 0..32, m_j in 0..4, oh, ow { acc = 0
      for rc, kh, kw { acc += x[n, m_g * 4 + rc, ..] * w[m_g * 4 + m_j, rc, kh, kw] }
      y[n, m_g * 4 + m_j, ..] = f(acc) }

The operands then share only m_g: a grid axis of independent products (M = N*OH*OW rows,
OC/G columns, K = IC/G*KH*KW each). A loop both operands read otherwise, not only through
one `m // d` (depthwise convolution with its channel in both), is no grouped product.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepc.ir.expr import Binary, Const, Expr, Var
from deepc.ir.loop import Stmt
from deepc.ir.rewrite import map_expr, substitute
from deepc.ir.tensor import walk
from deepc.schedule.stmt_rewrite import substitute_stmt

Axes = tuple[tuple[Var, int], ...]


def _divisor(e: Expr, s: Var) -> int | None:
    """d where `e` reads `s` only as `s // d` (one constant d), else None."""
    found = {int(x.b.value) for x in walk(e) if isinstance(x, Binary) and x.op == "floordiv"
             and x.a == s and isinstance(x.b, Const)}
    return found.pop() if len(found) == 1 else None


def split_groups(axes: Axes, x: Expr, y: Expr, epilogue: Sequence[Stmt], shared: set[Var]
                 ) -> tuple[Axes, Expr, Expr, tuple[Stmt, ...], tuple[tuple[Var, int], ...]] | None:
    """`axes` with the one loop `shared` by both operands split into (group, channel), the
    operands and epilogue over the two, and the group axis; None when `x` does not read that
    loop only through one `m // d` (d dividing its extent) or the split leaves one group."""
    if len(shared) != 1:
        return None
    (s,) = shared
    extent = next(e for var, e in axes if var == s)
    d = _divisor(x, s)
    if d is None or d < 2 or extent % d or extent == d:
        return None
    g, j = Var(f"{s.name}_g", s.dtype), Var(f"{s.name}_j", s.dtype)
    xg = map_expr(x, lambda e: g if isinstance(e, Binary) and e.op == "floordiv"
                  and e.a == s and isinstance(e.b, Const) and e.b.value == d else None)
    if any(isinstance(v, Var) and v == s for v in walk(xg)):
        return None
    flat = {s: g * d + j}
    split = tuple(pair for var, e in axes
                  for pair in (((g, extent // d), (j, d)) if var == s else ((var, e),)))
    return (split, xg, substitute(y, flat), tuple(substitute_stmt(t, flat) for t in epilogue),
            ((g, extent // d),))


def batch_axes(axes: Axes, shared: set[Var]) -> tuple[tuple[Var, int], ...] | None:
    """The loops both operands read, as group axes (blockIdx.z over their product), where
    they lie outside the loops of one operand alone: a batched matmul's batch and head
    loops. A depthwise conv's channel loop is shared too, but it leaves no column loop, which
    match_gemm refuses; the innermost loop stays a row or column loop of the product."""
    if not shared or axes[-1][0] in shared:
        return None
    return tuple((var, e) for var, e in axes if var in shared)

"""Index analysis for the LLVM emitter: flat offsets, lane strides, speculation safety."""

from __future__ import annotations

from deepc.backends.llvm.types import is_float
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import Binary, Const, Expr, Load, Select, Var
from deepc.ir.loop import Buffer
from deepc.ir.tensor import children, walk


def linear_offset(buf: Buffer, indices: tuple[Expr, ...]) -> Expr:
    return flat_offset(buf.shape, indices)


def lane_coefficient(e: Expr, v: Var) -> int | None:
    """d(e)/d(v) when `e` is affine in `v` with a constant coefficient, else None. An offset
    that unravels an index and flattens it again ((x // n) * n + x % n, a reshape of a
    blocked buffer) counts by its affine form, where those parts rejoin into x."""
    direct = _coefficient(e, v)
    if direct is not None:
        return direct
    form = affine(e)
    if any(not isinstance(t, Var) and depends_on(t, v) for t, _ in form.terms):
        return None
    return form.coef(v)


def _coefficient(e: Expr, v: Var) -> int | None:
    if isinstance(e, Var):
        return 1 if e == v else 0
    if isinstance(e, Const):
        return 0
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = _coefficient(e.a, v), _coefficient(e.b, v)
        if a is None or b is None:
            return None
        return a + b if e.op == "add" else a - b
    if isinstance(e, Binary) and e.op == "mul":
        a, b = _coefficient(e.a, v), _coefficient(e.b, v)
        if a == 0 and b == 0:
            return 0
        if a is not None and b == 0 and isinstance(e.b, Const):
            return a * int(e.b.value)
        if b is not None and a == 0 and isinstance(e.a, Const):
            return b * int(e.a.value)
        return None
    return 0 if not depends_on(e, v) else None


def depends_on(e: Expr, v: Var) -> bool:
    return any(isinstance(x, Var) and x == v for x in walk(e))


def non_negative(e: Expr) -> bool:
    """Conservative: loop variables and non-negative constants combined by + * // %."""
    if isinstance(e, Var):
        return True
    if isinstance(e, Const):
        return e.value >= 0
    if isinstance(e, Binary) and e.op in ("add", "mul", "floordiv", "mod", "min", "max"):
        return non_negative(e.a) and non_negative(e.b)
    return False


def unsafe_to_speculate(e: Expr) -> bool:
    """Loads and integer division may fault when evaluated for a lane a select discards."""
    return any(isinstance(x, Load) or (isinstance(x, Binary) and x.op in
               ("div", "floordiv", "mod", "fmod") and not is_float(x.dtype)) for x in walk(e))


def unsafe_select(e: Select) -> bool:
    """Whether a side of e may fault where e discards it. A side its condition computes
    anyway, outside any select there, runs for every lane regardless: the clamp
    select(y > lo, y, lo) of a loaded y is one maxps, no branch."""
    computed, stack = set(), [e.cond]
    while stack:
        x = stack.pop()
        computed.add(x)
        if not isinstance(x, Select):
            stack.extend(children(x))
    return any(side not in computed and unsafe_to_speculate(side) for side in (e.t, e.f))

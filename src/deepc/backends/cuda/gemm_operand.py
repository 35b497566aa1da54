"""How the tiled matrix-product kernel (gemm.py) fetches an operand element cheaply.

A "direct" operand is one global load at base(side) + koff(k): the side part (output row or
column) computed once per thread before the K loop, the k part `scale * k` or read from a
compile-time table (a convolution's window offsets). A guarded direct operand is
`cond ? x[...] : c` where `cond` bounds affine forms of the loop variables (a convolution's
zero padding folded into the load): each form splits into a per-thread side part and a
per-k part, the k parts packed with the address offset in one int4 table entry, so an
element costs one 16-byte table load, an unsigned compare per form and the guarded load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

from deepc.ir.affine import Affine, affine, flat_offset
from deepc.ir.expr import Binary, Const, Expr, Load, Select, Var

_CMP = ("ge", "gt", "le", "lt")


@dataclass
class Guard:
    """lo <= side + k part <= hi (either bound may be absent)."""

    side: Expr
    table: list[int]
    lo: int | None = None
    hi: int | None = None


@dataclass
class Direct:
    buf: str
    side: Expr
    scale: int | None
    table: list[int]
    guards: list[Guard] = field(default_factory=list)
    otherwise: Const | None = None

    def koff(self, table: str, k: str) -> str:
        if self.guards:
            return "g_kt.x"
        return f"{self.scale} * {k}" if self.scale is not None else f"{table}[{k}]"


def _ktable(k: dict[Var, int], axes: tuple[tuple[Var, int], ...]) -> list[int]:
    return [sum(k.get(v, 0) * i for (v, _), i in zip(axes, idx))
            for idx in product(*(range(e) for _, e in axes))]


def _split(a: Affine, side_vars: set[Var], k_vars: set[Var]) -> dict[Var, int] | None:
    if not all(isinstance(t, Var) and t in side_vars | k_vars for t, _ in a.terms):
        return None
    return {t: c for t, c in a.terms if t in k_vars}  # type: ignore[misc]


def _conjuncts(cond: Expr) -> list[Expr]:
    if isinstance(cond, Binary) and cond.op == "and":
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]


def _guards(cond: Expr, side_vars: set[Var], k_axes: tuple[tuple[Var, int], ...]
            ) -> list[Guard] | None:
    """`cond` as bounds on affine forms, or None when it is anything else."""
    k_vars = {v for v, _ in k_axes}
    groups: dict[tuple[tuple[str, int], ...], tuple[Affine, Guard]] = {}
    for c in _conjuncts(cond):
        if not (isinstance(c, Binary) and c.op in _CMP):
            return None
        try:
            d = affine(c.a).minus(affine(c.b))
        except (TypeError, ValueError):
            return None
        form = Affine(d.terms, 0)
        if _split(form, side_vars, k_vars) is None or not form.terms:
            return None
        key = tuple(sorted((t.name, v) for t, v in form.terms))  # type: ignore[attr-defined]
        if key not in groups:
            k = _split(form, side_vars, k_vars) or {}
            side = form.without(keep=side_vars).to_expr()
            groups[key] = (form, Guard(side, _ktable(k, k_axes)))
        g = groups[key][1]
        # form + const (op) 0
        if c.op in ("ge", "gt"):
            lo = -d.const + (1 if c.op == "gt" else 0)
            g.lo = lo if g.lo is None else max(g.lo, lo)
        else:
            hi = -d.const - (1 if c.op == "lt" else 0)
            g.hi = hi if g.hi is None else min(g.hi, hi)
    return [g for _, g in groups.values()]


def direct(x: Expr, side: tuple[tuple[Var, int], ...],
           k_axes: tuple[tuple[Var, int], ...], guarded: bool = False) -> Direct | None:
    """`x` as a (guarded, when allowed) direct operand, or None."""
    guards: list[Guard] = []
    otherwise = None
    side_vars = {v for v, _ in side}
    if isinstance(x, Select) and guarded and isinstance(x.f, Const):
        found = _guards(x.cond, side_vars, k_axes)
        if found is None or len(found) > 3:
            return None
        guards, otherwise, x = found, x.f, x.t
    if not isinstance(x, Load) or x.source.scope != "global":
        return None
    try:
        a = affine(flat_offset(x.source.shape, x.indices))
    except (TypeError, ValueError):
        return None
    k = _split(a, side_vars, {v for v, _ in k_axes})
    if k is None:
        return None
    strides, stride = {}, 1
    for var, extent in reversed(k_axes):
        strides[var] = stride
        stride *= extent
    scale = k.get(k_axes[-1][0], 0)
    if not all(k.get(v, 0) == scale * strides[v] for v, _ in k_axes):
        scale = None
    return Direct(x.source.name, a.without(keep=side_vars).to_expr(), scale,
                  _ktable(k, k_axes), guards, otherwise)


def table(name: str, d: Direct, it: str) -> str | None:
    """The compile-time k table an operand reads (int4 rows when guarded), or None."""
    if d.guards:
        cols = [d.table] + [g.table for g in d.guards]
        cols += [[0] * len(d.table)] * (4 - len(cols))
        rows = ",".join("{" + ",".join(str(c[i]) for c in cols) + "}"
                        for i in range(len(d.table)))
        return f"__device__ const int4 {name}[{len(d.table)}] = {{{rows}}};"
    if d.scale is not None:
        return None
    body = ",".join(str(v) for v in d.table)
    return f"__device__ const {it} {name}[{len(d.table)}] = {{{body}}};"


def guard_decls(d: Direct, render: object, it: str) -> list[str]:
    """Per-thread bounds, before the K loop: g_glo{j} = lo - side_j (and g_ghi{j})."""
    out = []
    for j, g in enumerate(d.guards):
        side = render(g.side)  # type: ignore[operator]
        if g.lo is not None:
            out.append(f"const int g_glo{j} = {g.lo} - (int)({side});")
        if g.hi is not None and g.lo is None:
            out.append(f"const int g_ghi{j} = {g.hi} - (int)({side});")
    return out


def guard_cond(d: Direct) -> str:
    """The guard, over the table row g_kt of the element's k."""
    terms = []
    for j, g in enumerate(d.guards):
        kp = "g_kt." + "yzw"[j]
        if g.lo is not None and g.hi is not None:  # one unsigned compare: the span is fixed
            terms.append(f"(unsigned)({kp} - g_glo{j}) <= {g.hi - g.lo}u"
                         if g.hi >= g.lo else "false")
        elif g.lo is not None:
            terms.append(f"{kp} >= g_glo{j}")
        else:
            terms.append(f"{kp} <= g_ghi{j}")
    return " && ".join(terms) or "true"

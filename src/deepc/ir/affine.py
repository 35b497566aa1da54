"""Affine analysis of integer index expressions: e = const + sum(coef * term)."""

from __future__ import annotations

from dataclasses import dataclass

from deepc.ir.expr import INDEX, Binary, Const, Expr, Var, binary


@dataclass(frozen=True)
class Affine:
    """const + sum(coef * term); terms are variables or opaque sub-expressions."""

    terms: tuple[tuple[Expr, int], ...]
    const: int

    def coef(self, term: Expr) -> int:
        return dict(self.terms).get(term, 0)

    def without(self, keep: set[Var] | None = None, drop: set[Var] | None = None) -> Affine:
        terms = tuple((t, c) for t, c in self.terms
                      if (drop is None or t not in drop) and (keep is None or t in keep))
        return Affine(terms, self.const)

    def minus(self, other: Affine) -> Affine:
        acc = dict(self.terms)
        for t, c in other.terms:
            acc[t] = acc.get(t, 0) - c
        return Affine(tuple((t, c) for t, c in acc.items() if c), self.const - other.const)

    def to_expr(self) -> Expr:
        e: Expr = Const(self.const, INDEX)
        for t, c in self.terms:
            e = binary("add", e, binary("mul", t, Const(c, INDEX)))
        return e


def affine(e: Expr) -> Affine:
    """Decompose an int64 expression; non-affine parts become opaque terms."""
    if isinstance(e, Const) and e.dtype == INDEX:
        return Affine((), int(e.value))
    if isinstance(e, Binary) and e.op in ("add", "sub"):
        a, b = affine(e.a), affine(e.b)
        if e.op == "sub":
            b = Affine(tuple((t, -c) for t, c in b.terms), -b.const)
        acc = dict(a.terms)
        for t, c in b.terms:
            acc[t] = acc.get(t, 0) + c
        return _rejoin_div_mod(Affine(tuple((t, c) for t, c in acc.items() if c),
                                      a.const + b.const))
    if isinstance(e, Binary) and e.op == "mul":
        a, b = affine(e.a), affine(e.b)
        if not a.terms:
            return Affine(tuple((t, c * a.const) for t, c in b.terms if c * a.const),
                          a.const * b.const)
        if not b.terms:
            return Affine(tuple((t, c * b.const) for t, c in a.terms if c * b.const),
                          a.const * b.const)
    return Affine(((e, 1),), 0)


def _rejoin_div_mod(a: Affine) -> Affine:
    """(x // n) * n*k + (x % n) * k is x * k: an index unravelled into a blocked or reshaped
    buffer and flattened again (a reshape of NCHW16c channels read as one row) stays affine
    in x, so that analyses see the contiguous run it is."""
    for t, c in a.terms:
        if not (isinstance(t, Binary) and t.op == "floordiv" and isinstance(t.b, Const)):
            continue
        n = int(t.b.value)
        for u, k in a.terms:
            if isinstance(u, Binary) and u.op == "mod" and u.a == t.a and u.b == t.b \
                    and n > 0 and c == k * n:
                inner = affine(t.a)
                acc = {v: m for v, m in a.terms if v is not t and v is not u}
                for v, m in inner.terms:
                    acc[v] = acc.get(v, 0) + m * k
                return _rejoin_div_mod(Affine(tuple((v, m) for v, m in acc.items() if m),
                                              a.const + inner.const * k))
    return a


def bounds(a: Affine, ranges: dict[Var, int]) -> tuple[Affine, int]:
    """For variables ranging over [0, extent), the smallest value (an affine form in the
    remaining terms) and the span (max - min + 1) of `a`."""
    lo, span = a.without(drop=set(ranges)), 1
    lo_const = lo.const
    for t, c in a.terms:
        if isinstance(t, Var) and t in ranges:
            reach = c * (ranges[t] - 1)
            lo_const += min(reach, 0)
            span += abs(reach)
    return Affine(lo.terms, lo_const), span


def flat_offset(shape: tuple[int, ...], indices: tuple[Expr, ...]) -> Expr:
    """Row-major element offset of `indices` into a buffer of `shape`."""
    offset: Expr = Const(0, INDEX)
    stride = 1
    for idx, n in reversed(list(zip(indices, shape))):
        offset = binary("add", offset, binary("mul", idx, Const(stride, INDEX)))
        stride *= n
    return offset

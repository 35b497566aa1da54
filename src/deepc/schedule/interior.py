"""`version_interior`: a register tile whose reads are clamped into the image and masked (a
depthwise conv over its zero padding, ops/conv_nchwc) or guarded (a max pool's
`select(in_image, x[..], -inf)`) -> the same tile twice: bare where every tap of the tile
falls inside the image, clamped, masked or guarded at the border.

Each masked tap costs two index clamps, a bounds test and a multiply per output pixel: scalar
work that outweighs the tap's one multiply-add (efficientnet_b0's 3x3 depthwise convs ran at
a third of their load-bound speed); each guarded read a branch around its load. Most tiles of
an image lie inside it, and there the clamps change nothing, the masks are all ones and the
guards all pass; one test per tile says so.

    for ow_o in 0..7 { alloc acc[16, 16]
      for kh, kw { unrolled for ow_i in 0..16 { vectorized for c in 0..16 {
        acc[ow_i, c] += x[clamp(oh + kh - 1), clamp(ow_o*16 + ow_i + kw - 1), c]
                        * (w[kh, kw, c] * select(in_image(..), 1, 0)) } } } .. }
version_interior(acc) ->
    for ow_o in 0..7 {
      if oh - 1 >= 0 && oh + 1 < 112 && ow_o*16 - 1 >= 0 && ow_o*16 + 16 < 112 {
        alloc acc[16, 16] (the taps unclamped, unmasked) }
      else { alloc acc[16, 16] (as above) } }
"""

from __future__ import annotations

from deepc.ir.affine import affine
from deepc.ir.expr import INDEX, Binary, Const, Expr, Load, Select, Var, binary
from deepc.ir.loop import Allocate, For, IfThenElse, PrimFunc, Stmt, Store, walk_stmts
from deepc.ir.rewrite import map_expr, substitute
from deepc.ir.tensor import walk
from deepc.schedule.lane_guard import conjuncts
from deepc.schedule.stmt_rewrite import map_exprs, map_stmt

BOUNDS = {"ge": "low", "gt": "low", "le": "high", "lt": "high"}


def version_interior(f: PrimFunc, acc: str) -> PrimFunc:
    """Version every allocation of the local buffer `acc` (a register tile's accumulators:
    one per tile) on whether its clamps and 0/1 masks are no-ops for the whole tile."""
    if not any(isinstance(s, Allocate) and s.buffer.name == acc for s in walk_stmts(f.body)):
        raise KeyError(f"version_interior: no buffer {acc!r} is allocated in {f.name}")

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, Allocate) and s.buffer.name == acc:
            return _versioned(s)
        return None

    return f.with_body(map_stmt(f.body, visit))


def _versioned(tile: Allocate) -> Stmt:
    inner = {x.var: x.extent for x in walk_stmts(tile) if isinstance(x, For)}
    nodes = [n for e in _exprs(tile) for n in walk(e)]
    edges: list[Expr] = []
    # a clamp is dropped inside when its own test holds for the whole tile, and so are the
    # clamps within it: the test reads the position unclamped, exact once those are no-ops
    clamps: dict[Expr, Expr] = {}  # each clamp (its inner clamps dropped) -> its operand
    for node in reversed(nodes):  # children before parents
        if not _is_clamp(node) or _bare(node.a, clamps) is None:  # type: ignore[attr-defined]
            continue
        assert isinstance(node, Binary)
        a = _bare(node.a, clamps)
        assert a is not None
        test = _edge(binary("ge" if node.op == "max" else "le", a, node.b), inner)
        if test is not None:
            edges.append(test)
            clamps[binary(node.op, a, node.b)] = a
    masks: dict[Expr, Expr] = {}  # each mask or guard -> its value inside the image
    for node in nodes:
        if not (_is_mask(node) or _is_guard(node)):
            continue
        assert isinstance(node, Select)
        cond = _bare(node.cond, clamps)
        tests = [_edge(c, inner) for c in conjuncts(cond)] if cond is not None else [None]
        if all(t is not None for t in tests):
            edges += [t for t in tests if t is not None]
            masks[node] = node.t
    if not edges:
        return tile
    whole = None
    for edge in dict.fromkeys(edges):  # the same test, met per tap and per statement, once
        whole = edge if whole is None else binary("and", whole, edge)
    assert whole is not None
    inside = map_exprs(tile, lambda e: map_expr(map_expr(e, masks.get), clamps.get))
    return IfThenElse(whole, inside, tile)


def _bare(e: Expr, clamps: dict[Expr, Expr]) -> Expr | None:
    """`e` with its clamps dropped, None when one of them is not known to be a no-op."""
    out = map_expr(e, clamps.get)
    return None if any(_is_clamp(n) for n in walk(out)) else out


def masked(s: Stmt) -> bool:
    """Whether `s` multiplies by 0/1 masks or reads through guards whose tests are all
    bounds (what version_interior drops inside the image)."""
    return any(_is_mask(n) or interior_guard(n)
               for e in _exprs(s) for n in walk(e))


def interior_guard(e: Expr) -> bool:
    """Whether `e` is a guarded read whose tests are all bounds, which version_interior
    drops inside the image (where the tests are affine in the tile's loops)."""
    return _is_guard(e) and all(isinstance(c, Binary) and c.op in BOUNDS
                                for c in conjuncts(e.cond))  # type: ignore[attr-defined]


def _exprs(s: Stmt) -> list[Expr]:
    out: list[Expr] = []
    for x in walk_stmts(s):
        if isinstance(x, Store):
            out += [*x.indices, x.value]
        elif isinstance(x, IfThenElse):
            out.append(x.cond)
    return out


def _is_mask(e: Expr) -> bool:
    """select(test, 1, 0) in a float type: a tap's weight switched off in the padding."""
    return (isinstance(e, Select) and isinstance(e.t, Const) and isinstance(e.f, Const)
            and e.t.value == 1 and e.f.value == 0 and e.t.dtype != INDEX)


def _is_guard(e: Expr) -> bool:
    """select(test, x[..], c): a read that falls back on a constant outside the image."""
    return (isinstance(e, Select) and isinstance(e.f, Const) and e.t.dtype != INDEX
            and any(isinstance(n, Load) for n in walk(e.t)))


def _is_clamp(e: Expr) -> bool:
    return (isinstance(e, Binary) and e.op in ("max", "min") and e.dtype == INDEX
            and isinstance(e.b, Const))


def _edge(test: Expr, inner: dict[Var, int]) -> Expr | None:
    """`a >= b` (or <, <=, >) with b free of the tile's loops, at the tile's iteration where
    `a` is furthest toward the bound, so that it holds there only if it holds throughout;
    None where `a` is not affine in those loops (or the test is not a bound)."""
    if not (isinstance(test, Binary) and test.op in BOUNDS):
        return None
    a, b = test.a, test.b
    if any(isinstance(n, Var) and n in inner for n in walk(b)):
        return None
    at: dict[Var, Expr] = {}
    for term, coef in affine(a).terms:
        if isinstance(term, Var) and term in inner:
            low = (coef > 0) == (BOUNDS[test.op] == "low")
            at[term] = Const(0 if low else inner[term] - 1, INDEX)
        elif any(isinstance(n, Var) and n in inner for n in walk(term)):
            return None  # moves with the tile, but not linearly
    return binary(test.op, substitute(a, at), b)


__all__ = ["interior_guard", "masked", "version_interior"]

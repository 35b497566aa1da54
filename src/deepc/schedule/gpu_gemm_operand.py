"""How the tiled matrix product (gpu_gemm.py) fetches one operand element at (row or column, k).

A *direct* operand is one global load at base(side) + koff(k): the side part computed once
per thread, koff as `scale * k` or from a compile-time table (a conv window's offsets). A
*guarded* direct operand is `cond ? x[...] : 0` where `cond` bounds affine forms of the loop
variables: a convolution's zero padding read straight from the unpadded input. Its guards
depend on the side and on a few k axes (the window taps, at most 64 combinations): each
thread evaluates them once for every tap into a bit mask, and the k table packs the tap
beside the offset (koff * 64 + tap), so an element costs the table read it had, a shift
and a mask test; out-of-range elements read a valid address (offset 0) and are replaced
by 0, or (cp.async) copy 0 bytes, which zero-fills. Anything else is computed from its
expression under the decoded k (a fused prologue: per-channel scale, shift, ReLU).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product
from math import prod

from deepc.ir.affine import Affine, affine, flat_offset
from deepc.ir.expr import Binary, Cast, Const, Expr, FlatLoad, Load, Select, Var, binary, select
from deepc.ir.loop import Buffer, IfThenElse, Store
from deepc.ir.loop import Stmt as S
from deepc.ir.rewrite import map_expr, substitute
from deepc.ir.tensor import walk
from deepc.schedule import gpu_gemm_pipeline as pipe
from deepc.schedule.gpu_build import Axes, decode, lets, seq, strides, v
from deepc.schedule.gpu_gemm_match import GemmParts
from deepc.schedule.lane_guard import conjuncts

LOADED = Var("g_x", "float32")  # the loaded element in a prologue
TAP_BITS = 6  # a guarded table entry is koff << TAP_BITS | tap: at most 64 taps
_CMP = ("ge", "gt", "le", "lt")
# Axes of extent 1 (a 1x1 conv's window) add nothing to an offset: left out of the test for a
# constant stride, a 1x1 conv's input reads k * H * W, one load at an immediate offset an
# element where a k table costs a constant-memory read and an add besides (ResNet-50: 14 of
# 21 conv shapes had tables, 7 keep them). Same addresses. On (timed on an
# H100 with the other two switches: gpu_gemm.EDGE_GUARDS_ONLY has the figures).
SCALE_UNIT_AXES = True


class Direct:
    """An operand that is one load at base(side) + koff(k): `scale * k`, or a table; with
    `mask` (an expression of the side), guarded by the mask's bit for the k's tap."""

    def __init__(
        self,
        buf: Buffer,
        side: Expr,
        k: dict[Var, int],
        axes: Axes,
        by4: bool,
        mask: Expr | None = None,
        taps: dict[Var, int] | None = None,
        count: int = 0,
    ):
        self.buf, self.side, self.side_by4, self.mask, self.k = buf, side, by4, mask, k
        # the tap of entries past K (a partial last k-step): one the mask never holds, so
        # the mask test alone zeroes them; None where all of its bits are taps
        width = 32 if mask is not None and mask.dtype == "uint32" else 64
        self.past = width - 1 if mask is not None and count < width else None
        self.prologue: Expr | None = None  # of LOADED (the load) and the k axes' variables
        # a concat along K read in place: (end of its K range, its part's direct operand)
        self.pieces: list[tuple[int, Direct]] = []
        wide = [(x, e) for x, e in axes if e > 1 or not SCALE_UNIT_AXES] or axes[-1:]
        flat = strides(wide)
        scale = k.get(wide[-1][0], 0)
        self.scale = (
            scale if mask is None and all(k.get(x, 0) == scale * flat[x] for x, _ in wide) else None
        )
        taps = taps or {}

        def dot(coeffs: dict[Var, int], idx: tuple[int, ...]) -> int:
            return sum(coeffs.get(x, 0) * i for (x, _), i in zip(axes, idx))

        # a guarded entry packs the tap beside the offset: koff << TAP_BITS | tap
        self.table: list[int] = [
            (dot(k, idx) << TAP_BITS) + dot(taps, idx) if mask is not None else dot(k, idx)
            for idx in product(*(range(e) for _, e in axes))
        ]

    def padded(self, bk: int) -> list[int]:
        """The k table to whole K steps, its last offset repeated (a partial step reads valid
        addresses, then zeroes them), guarded as outside the input where it can be."""
        last = self.table[-1]
        if self.past is not None:
            last = (last >> TAP_BITS << TAP_BITS) | self.past
        return self.table + [last] * (-len(self.table) % bk)


def _affine_vars(a: Affine, allowed: set[Var]) -> bool:
    return all(isinstance(t, Var) and t in allowed for t, _ in a.terms)


def _guard_mask(
    cond: Expr, side_vars: set[Var], k_axes: Axes
) -> tuple[Expr, dict[Var, int], int] | None:
    """`cond` (comparisons of affine forms of side and k variables) as a per-thread mask of
    the taps (the k axes it reads) it holds at (32 bits where fewer than 32 taps), each tap
    axis's stride in the tap index, and the taps' count; None when it is anything else or
    has more than 2**TAP_BITS taps. The mask is built per comparison (ANDed), each over the
    taps of its own k axes only: a 7x7 window's row bound is 7 compares, not 49."""
    k_vars = {x for x, _ in k_axes}
    reads: list[tuple[Expr, set[Var]]] = []
    for c in conjuncts(cond):
        if not (isinstance(c, Binary) and c.op in _CMP):
            return None
        try:
            forms = (affine(c.a), affine(c.b))
        except (TypeError, ValueError):
            return None
        if not all(_affine_vars(f, side_vars | k_vars) for f in forms):
            return None
        reads.append((c, {t for f in forms for t, _ in f.terms if t in k_vars}))  # type: ignore[misc]
    tap_axes = [(x, e) for x, e in k_axes if any(x in used for _, used in reads)]
    taps = prod(e for _, e in tap_axes)
    if taps > 1 << TAP_BITS:
        return None
    tap_strides = strides(tap_axes)
    every = list(product(*(range(e) for _, e in tap_axes)))
    bits_t = "uint32" if taps < 32 else "uint64"
    mask: Expr = Const((1 << taps) - 1, bits_t)
    for c, used in reads:
        axes = [(x, e) for x, e in tap_axes if x in used]
        held: Expr = Const(0, bits_t)
        for idx in product(*(range(e) for _, e in axes)):
            at = dict(zip((x for x, _ in axes), idx))
            bits = sum(
                1 << sum(tap_strides[x] * i for (x, _), i in zip(tap_axes, tap))
                for tap in every
                if all(tap[n] == at[x] for n, (x, _) in enumerate(tap_axes) if x in at)
            )
            test = substitute(c, {x: Const(i, "int64") for x, i in at.items()})
            held = binary("bitor", held, select(test, Const(bits, bits_t), Const(0, bits_t)))
        mask = binary("bitand", mask, held)
    return mask, tap_strides, taps


def direct(x: Expr, side: Axes, k_axes: Axes, fused: bool = False) -> Direct | None:
    """`x` as a direct operand, or None; with `fused`, also `cond ? load : 0` (guarded) and a
    prologue f(load, values of the k axes alone) (per-channel scale, shift, activation)."""
    side_vars, k_vars = {s for s, _ in side}, {s for s, _ in k_axes}
    if fused and isinstance(x, Select) and isinstance(x.f, Const) and x.f.value == 0:
        guard = _guard_mask(x.cond, side_vars, k_axes)
        d = direct(x.t, side, k_axes) if guard is not None else None
        if d is None or guard is None:
            return None
        return Direct(d.buf, d.side, d.k, k_axes, d.side_by4, *guard)
    if fused and not isinstance(x, Load):
        return _prologue(x, side, k_axes)
    if not isinstance(x, Load) or x.source.scope != "global":
        return None
    try:
        a = affine(flat_offset(x.source.shape, x.indices))
    except (TypeError, ValueError):
        return None
    if not _affine_vars(a, side_vars | k_vars):
        return None
    base = a.without(keep=side_vars)
    by4 = base.const % 4 == 0 and all(c % 4 == 0 for _, c in base.terms)
    return Direct(x.source, base.to_expr(), {t: c for t, c in a.terms if t in k_vars}, k_axes, by4)


def _chain(x: Expr, k_vars: set[Var]) -> Select | None:
    """The outermost `k < c ? a : b` in x (a concat along a K axis), or None."""
    if (
        isinstance(x, Select)
        and isinstance(x.cond, Binary)
        and x.cond.op == "lt"
        and x.cond.a in k_vars
        and isinstance(x.cond.b, Const)
    ):
        return x
    for child in (getattr(x, f, None) for f in ("a", "b", "x", "t", "f", "cond")):
        if isinstance(child, Expr):
            found = _chain(child, k_vars)
            if found is not None:
                return found
    for child in getattr(x, "args", ()) or ():
        found = _chain(child, k_vars)
        if found is not None:
            return found
    return None


def _pieces(root: Select, side: Axes, k_axes: Axes) -> list[tuple[int, Direct]] | None:
    """A concat's select chain over one K axis as (end of the part's flat K range, the part's
    direct operand), parts sharing one k table; None when any part is no direct load."""
    var = root.cond.a  # type: ignore[attr-defined]
    stride = prod(e for x, e in k_axes[[x for x, _ in k_axes].index(var) + 1 :])
    k = prod(e for _, e in k_axes)
    out: list[tuple[int, Direct]] = []
    e: Expr = root
    while isinstance(e, Select) and isinstance(e.cond, Binary) and e.cond.a == var:
        d = direct(e.t, side, k_axes)
        if d is None or not isinstance(e.cond.b, Const):
            return None
        out.append((int(e.cond.b.value) * stride, d))
        e = e.f
    last = direct(e, side, k_axes)
    if last is None:
        return None
    out.append((k, last))
    first = out[0][1]
    if any(d.table != first.table or d.scale != first.scale for _, d in out):
        return None
    return out


def _prologue(x: Expr, side: Axes, k_axes: Axes) -> Direct | None:
    """x as f(load, values of the k axes alone): one direct load, or a concat of them along
    a K axis (DenseNet's BN + ReLU after its concat), under a per-channel prologue f."""
    side_vars, k_vars = {s for s, _ in side}, {s for s, _ in k_axes}
    root = _chain(x, k_vars)
    if root is not None:
        pieces = _pieces(root, side, k_axes)
        if pieces is None:
            return None
        inner: Expr = root
        d = pieces[0][1]
    else:
        moving = {e for e in walk(x) if _reads_side(e, side_vars)}
        if len(moving) != 1:
            return None
        inner = moving.pop()
        found = direct(inner, side, k_axes)
        if found is None:
            return None
        d, pieces = found, []
    rest = map_expr(x, lambda e: LOADED if e == inner else None)
    if not {t for t in walk(rest) if isinstance(t, Var)} <= k_vars | {LOADED}:
        return None
    if any(_reads_side(e, side_vars) for e in walk(rest)):
        return None
    prologue = None if rest == LOADED else rest
    for _, piece in pieces:
        piece.prologue = prologue
    d.prologue, d.pieces = prologue, pieces
    return d


def _reads_side(e: Expr, side_vars: set[Var]) -> bool:
    """Whether `e` is a load whose indices move with the row (or column) variables."""
    return isinstance(e, Load) and any(
        isinstance(t, Var) and t in side_vars for i in e.indices for t in walk(i)
    )


class Operand:
    """One operand's fetch into a register or a shared slot: direct (table or scale, maybe
    guarded by `mask`, the thread's tap mask variable) or its expression."""

    def __init__(
        self,
        d: Direct | None,
        expr: Expr,
        table: Buffer | None,
        k: Expr,
        parts: GemmParts,
        tail: bool,
        mask: Var | None = None,
    ):
        self.d, self.expr, self.table, self.k = d, expr, table, k
        self.parts, self.tail, self.mask = parts, tail, mask

    def computed(
        self,
        reg: Buffer,
        e: tuple[Expr, ...],
        guard: Expr,
        gk: Var,
        decodes: list[tuple[Var, Expr]],
    ) -> S:
        """reg[e] = the operand's expression at (row or column, gk), zero outside."""
        return seq(
            Store(reg, e, Const(0.0, "float32")),
            IfThenElse(
                guard & (gk < self.k),
                lets(decodes + decode(self.parts.k_axes, gk), Store(reg, e, self.expr)),
            ),
        )

    def _at(self, base: Expr, gk: Expr, put: Callable[[Expr, Expr | None], S], safe: bool) -> S:
        """put(offset, valid) for a direct operand's element at gk: past K a valid offset
        (the last k's); `valid` None where every element is in range. Outside the input
        (guarded), the offset is 0 where `safe` (a cp.async takes the address even when it
        copies nothing), else the element's own: put must then not read it."""
        assert self.d is not None
        kk: Expr = gk
        if self.tail and self.d.scale is not None:
            kk = select(gk < self.parts.k, gk, self.parts.k - 1)
        valid = gk < self.k if self.tail and (self.mask is None or self.d.past is None) else None
        if self.d.scale is not None:
            return put(base + kk * self.d.scale, valid)
        entry = Load(self.table, (kk,))  # type: ignore[arg-type]
        if self.mask is None:
            return put(base + entry, valid)
        ke = v("g_ke")
        bits = self.mask.dtype
        tap = Cast(bits, binary("bitand", ke, (1 << TAP_BITS) - 1))
        inside = binary(
            "ne",
            binary("bitand", binary("shr", self.mask, tap), Const(1, bits)),
            Const(0, bits),
        )
        valid = inside if valid is None else valid & inside
        off = base + binary("shr", ke, TAP_BITS)
        return lets([(ke, entry)], put(select(inside, off, 0) if safe else off, valid))

    def _fetch(
        self, dst: Buffer, at: tuple[Expr, ...], gk: Var, raw: bool = False
    ) -> Callable[[Expr, Expr | None], S]:
        """put(offset, valid) storing the element at `offset` (its prologue applied; 0 where
        not valid) to dst[at]. A guarded plain element is a zero, then a load where valid:
        the predicate is spent when the load issues, where a select after it would hold one
        register per element until the data lands (ResNet-18's 128x64x32 TF32 tiles then
        spilled: 32 elements in flight per thread)."""
        d = self.d
        assert d is not None

        prologue = None if raw else d.prologue

        def put(off: Expr, valid: Expr | None) -> S:
            value = FlatLoad(d.buf, off, "float32")
            if prologue is None and valid is None:
                return Store(dst, at, value)
            if prologue is None and self.mask is not None:
                return seq(
                    Store(dst, at, Const(0.0, "float32")), IfThenElse(valid, Store(dst, at, value))
                )  # type: ignore[arg-type]
            out = LOADED if prologue is None else prologue
            decodes = [] if prologue is None else decode(self.parts.k_axes, gk)
            return lets(
                [(LOADED, value), *decodes],
                Store(dst, at, out if valid is None else select(valid, out, 0.0)),
            )

        return put

    def to_shared(
        self,
        slot: Buffer,
        at: tuple[Expr, ...],
        base: Expr,
        guard: Expr,
        gk: Var,
        decodes: list[tuple[Var, Expr]],
    ) -> S:
        """slot[at] = the operand at (row or column, gk): a cp.async where it is one load
        (a prologue is applied in registers on the way)."""
        if self.d is None:
            return self.computed(slot, at, guard, gk, decodes)
        d = self.d
        if d.prologue is not None:
            return self._at(base, gk, self._fetch(slot, at, gk), False)
        return self._at(
            base, gk, lambda off, valid: pipe.copy(slot, at, d.buf, off, 1, valid), True
        )

    def load(
        self,
        reg: Buffer,
        e: Expr,
        base: Expr,
        guard: Expr,
        gk: Var,
        decodes: list[tuple[Var, Expr]],
    ) -> S:
        """reg[e] = the operand at (row or column, gk); its prologue left to the store into
        shared memory (late): loaded elements in flight hold no per-channel values."""
        if self.d is None:
            return self.computed(reg, (e,), guard, gk, decodes)
        return self._at(base, gk, self._fetch(reg, (e,), gk, raw=True), False)

    def late(self, value: Expr, gk: Var) -> Expr | None:
        """The prologue of a register-fetched element `value` at gk, as the expression to
        store (0 past the K range); None where there is none."""
        if self.d is None or self.d.prologue is None:
            return None
        out = substitute(self.d.prologue, {LOADED: value, **dict(decode(self.parts.k_axes, gk))})
        return select(gk < self.k, out, 0.0) if self.tail else out


__all__ = ["LOADED", "TAP_BITS", "Direct", "Operand", "direct"]

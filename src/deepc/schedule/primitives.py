"""Schedule primitives on the loop IR. Each takes a function and loop names and returns a new
function; none changes what the function computes (tests check that on random shapes)."""

from __future__ import annotations

from collections.abc import Callable

from deepc.ir.expr import Var, binary
from deepc.ir.loop import For, ForKind, IfThenElse, PrimFunc, Stmt, find_loop
from deepc.schedule.stmt_rewrite import map_stmt, substitute_stmt


def _replace_loop(f: PrimFunc, name: str, fn: object) -> PrimFunc:
    find_loop(f.body, name)  # raises KeyError naming the loop when absent

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, For) and s.var.name == name:
            return fn(s)  # type: ignore[operator]
        return None

    return f.with_body(map_stmt(f.body, visit))


def split(f: PrimFunc, loop: str, factor: int) -> PrimFunc:
    """Split a loop into an outer and an inner loop of `factor` iterations.

        for i in 0..10 { B[i] = A[i] }
    split(i, 4) ->
        for i_o in 0..3 { for i_i in 0..4 { if i_o * 4 + i_i < 10 { B[..] = A[..] } } }

    The guard appears only when `factor` does not divide the extent; it sits below any
    loops nested perfectly inside, so they can still be reordered.
    """
    if factor < 1:
        raise ValueError("split factor must be at least 1")

    def fn(s: For) -> Stmt:
        outer, inner = Var(f"{s.var.name}_o"), Var(f"{s.var.name}_i")
        index = binary("add", binary("mul", outer, factor), inner)
        body = substitute_stmt(s.body, {s.var: index})
        if s.extent % factor:
            body = _guard_innermost(body, binary("lt", index, s.extent))
        n_outer = -(-s.extent // factor)
        return For(outer, n_outer, s.kind, For(inner, factor, ForKind.SERIAL, body))

    return _replace_loop(f, loop, fn)


def _guard_innermost(body: Stmt, cond: object) -> Stmt:
    """Put a split's bounds guard below the perfect loop nest, so loops stay reorderable."""
    if isinstance(body, For):
        return For(body.var, body.extent, body.kind, _guard_innermost(body.body, cond),
                   body.thread_axis)
    return IfThenElse(cond, body)  # type: ignore[arg-type]


def fuse(f: PrimFunc, outer: str, inner: str) -> PrimFunc:
    """Fuse two directly nested loops into one.

        for i in 0..4 { for j in 0..8 { body(i, j) } }
    fuse(i, j) ->
        for i_j in 0..32 { body(i_j // 8, i_j % 8) }
    """

    def fn(s: For) -> Stmt:
        if not isinstance(s.body, For) or s.body.var.name != inner:
            raise ValueError(f"fuse: loop {inner!r} is not directly inside {outer!r}")
        inn = s.body
        fused = Var(f"{s.var.name}_{inn.var.name}")
        body = substitute_stmt(inn.body, {s.var: binary("floordiv", fused, inn.extent),
                                          inn.var: binary("mod", fused, inn.extent)})
        return For(fused, s.extent * inn.extent, s.kind, body)

    return _replace_loop(f, outer, fn)


def reorder(f: PrimFunc, *order: str) -> PrimFunc:
    """Permute loops of one perfect nest into the given order (outermost first).

        for i { for j { for k { body } } }
    reorder(k, i) ->
        for k { for j { for i { body } } }   (the listed loops swap places; j stays put)

    Where a loop's name heads several nests (a tile's accumulators set, updated and read
    back under the same tile loops), the one nest that holds every listed loop is reordered:
    after tile_reduction(h, w), reorder(h, rk) moves the rows `h` outside the reduction loop
    `rk` of the update alone, so each block of weights serves every row while in cache.
    """
    names = set(order)

    def chain_of(s: For) -> list[For] | None:
        chain = [s]
        while len(names & {c.var.name for c in chain}) < len(names):
            nxt = chain[-1].body
            if not isinstance(nxt, For):
                return None
            chain.append(nxt)
        return chain

    def fn(s: For) -> Stmt:
        chain = chain_of(s)
        if chain is None:
            return s
        innermost_body = chain[-1].body
        slots = [k for k, c in enumerate(chain) if c.var.name in names]
        by_name = {c.var.name: c for c in chain}
        new_chain = list(chain)
        for slot, name in zip(slots, order):
            new_chain[slot] = by_name[name]
        body = innermost_body
        for c in reversed(new_chain):
            body = For(c.var, c.extent, c.kind, body, c.thread_axis)
        return body

    outermost = _outermost(f.body, names, chain_of)
    return _replace_loop(f, outermost, fn)


def _outermost(s: Stmt, names: set[str], chain_of: Callable[[For], list[For] | None]) -> str:
    """The first loop named in `names` that heads a perfect nest holding all of them."""
    from deepc.ir.loop import walk_stmts

    for x in walk_stmts(s):
        if isinstance(x, For) and x.var.name in names and chain_of(x) is not None:
            return x.var.name
    if any(isinstance(x, For) and x.var.name in names for x in walk_stmts(s)):
        raise ValueError(f"reorder: loops {sorted(names)} are not one perfect nest")
    raise KeyError(f"no loop named any of {sorted(names)}")


def tile(f: PrimFunc, x: str, y: str, fx: int, fy: int) -> PrimFunc:
    """split(x, fx), split(y, fy), reorder(x_o, y_o, x_i, y_i)."""
    f = split(split(f, x, fx), y, fy)
    return reorder(f, f"{x}_o", f"{y}_o", f"{x}_i", f"{y}_i")


def _set_kind(f: PrimFunc, loop: str, kind: ForKind, axis: str = "") -> PrimFunc:
    return _replace_loop(f, loop, lambda s: For(s.var, s.extent, kind, s.body, axis))


def vectorize(f: PrimFunc, loop: str) -> PrimFunc:
    """Run a loop's iterations as the lanes of one vector (the loop should be innermost)."""
    return _set_kind(f, loop, ForKind.VECTORIZED)


def unroll(f: PrimFunc, loop: str) -> PrimFunc:
    """Replicate a loop's body once per iteration."""
    return _set_kind(f, loop, ForKind.UNROLLED)


def pipeline(f: PrimFunc, loop: str, ii: int = 1) -> PrimFunc:
    """Start a loop's iterations every `ii` cycles on an FPGA (its inner loops unrolled into
    the pipeline); the target interval is kept in the function's "pipeline_ii" attribute.

        for i in 0..8 { for r in 0..4 {...} }
    unroll(r), pipeline(i, 1) ->
        for i in 0..8 pipelined(II=1) { for r in 0..4 unrolled {...} }
    """
    g = _set_kind(f, loop, ForKind.PIPELINED)
    g.attrs["pipeline_ii"] = {**f.attrs.get("pipeline_ii", {}), loop: int(ii)}
    return g


def partition(f: PrimFunc, buffer: str, factor: int) -> PrimFunc:
    """Spread an on-chip buffer cyclically over `factor` memories (an FPGA's BRAMs), so that
    `factor` consecutive elements are read in one cycle; kept in the "partition" attribute."""
    g = f.with_body(f.body)
    g.attrs["partition"] = {**f.attrs.get("partition", {}), buffer: int(factor)}
    return g


def parallel(f: PrimFunc, loop: str) -> PrimFunc:
    """Spread a loop's iterations over the thread pool."""
    return _set_kind(f, loop, ForKind.PARALLEL)


def bind(f: PrimFunc, loop: str, thread_tag: str) -> PrimFunc:
    """Bind a loop to a GPU axis: `blockIdx.x`, `threadIdx.y`, ..."""
    kind_name, _, axis = thread_tag.partition(".")
    kind = {"blockIdx": ForKind.GPU_BLOCK, "threadIdx": ForKind.GPU_THREAD}[kind_name]
    return _set_kind(f, loop, kind, axis)

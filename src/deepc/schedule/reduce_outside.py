"""The reduce_outside primitive: a per-output running sum to a tile of sums in on-chip memory,
with the reduction loops moved outside the loops over the outputs, so a pipeline runs over
outputs (each element is next updated a whole tile later; unrolled, the outputs are summed
side by side) instead of starting and draining once per output."""

from __future__ import annotations

from deepc.ir.expr import Expr, Load, Var, binary
from deepc.ir.loop import Allocate, Buffer, For, PrimFunc, Seq, Stmt, Store, find_loop
from deepc.schedule.stmt_rewrite import map_stmt, rewrite_loads, substitute_stmt


def output_nest(loop: For) -> tuple[list[For], Allocate] | None:
    """The loops from `loop` down to a one-element running sum (`acc[0] = init; for r ...;
    uses of acc[0]`) they hold and nothing else; None where `loop` is not such a nest."""
    nest, s = [loop], loop.body
    while isinstance(s, For):
        nest.append(s)
        s = s.body
    if not (isinstance(s, Allocate) and s.data is None and s.buffer.size == 1
            and isinstance(s.body, Seq) and len(s.body.stmts) >= 3):
        return None
    init, red = s.body.stmts[:2]
    if not (isinstance(init, Store) and init.buffer == s.buffer and isinstance(red, For)
            and isinstance(red.extent, int) and red.start == 0 and red.step == 1):
        return None
    if any(not isinstance(x.extent, int) for x in nest):
        return None
    return nest, s


def reduce_outside(f: PrimFunc, loop: str) -> PrimFunc:
    """Move the reduction loops of the running sum inside the nest `loop` outside that nest
    (its perfectly nested reduction loops all go outside, the outputs innermost).

        for y in 0..H { for x in 0..W { acc[1]: acc[0] = 0
                                                for r in 0..R { acc[0] = acc[0] + A[r, y, x] }
                                                B[y, x] = acc[0] } }
    reduce_outside(y) ->
        acc_tile[H*W] (bram): for y_0 in 0..H { for x_0 in 0..W { acc_tile[y_0*W + x_0] = 0 } }
                              for r in 0..R { for y { for x {
                                  acc_tile[y*W + x] = acc_tile[y*W + x] + A[r, y, x] } } }
                              for y_1 in 0..H { for x_1 in 0..W { B[y_1, x_1] = acc_tile[..] } }
    """
    found = output_nest(find_loop(f.body, loop))
    if found is None:
        raise ValueError(f"loop {loop} does not hold one running sum per output")
    nest, alloc = found
    acc = alloc.buffer
    size = 1
    for x in nest:
        size *= x.extent  # type: ignore[operator]
    tile = Buffer(f"{acc.name}_tile", (size,), acc.dtype, "bram")
    init, red, *epilogue = alloc.body.stmts  # type: ignore[attr-defined]

    def over_tile(s: Stmt, names: dict[Var, Var]) -> Stmt:
        """`s` on the tile's element of the nest's variables (renamed by `names`)."""
        flat: Expr = names.get(nest[0].var, nest[0].var)
        for x in nest[1:]:
            flat = binary("add", binary("mul", flat, x.extent), names.get(x.var, x.var))
        s = substitute_stmt(s, names) if names else s
        s = rewrite_loads(s, lambda e: Load(tile, (flat,))
                          if isinstance(e, Load) and e.source == acc else None)

        def store(t: Stmt) -> Stmt | None:
            if isinstance(t, Store) and t.buffer == acc:
                return Store(tile, (flat,), t.value)
            return None

        return map_stmt(s, store)

    def wrap(body: Stmt, names: dict[Var, Var]) -> Stmt:
        for x in reversed(nest):
            body = For(names.get(x.var, x.var), x.extent, x.kind, body)
        return body

    first = {x.var: Var(f"{x.var.name}_0") for x in nest}
    last = {x.var: Var(f"{x.var.name}_1") for x in nest}
    chain, inner = [red], red.body
    while isinstance(inner, For):
        chain.append(inner)
        inner = inner.body
    sums = wrap(over_tile(inner, {}), {})
    for x in reversed(chain):
        sums = For(x.var, x.extent, x.kind, sums, x.thread_axis, x.start, x.step)
    rest = epilogue[0] if len(epilogue) == 1 else Seq(tuple(epilogue))
    replaced = Allocate(tile, Seq((wrap(over_tile(init, first), first), sums,
                                   wrap(over_tile(rest, last), last))))

    def fn(s: Stmt) -> Stmt | None:
        return replaced if isinstance(s, For) and s.var.name == loop else None

    return f.with_body(map_stmt(f.body, fn))

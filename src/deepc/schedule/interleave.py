"""The interleave primitive: a loop's running sum to `lanes` partial sums added at the end, so
that a pipelined loop carries no dependence through one adder from one iteration to the next.

A float adder takes several cycles; a loop whose every iteration adds into the same register
can start an iteration only once the previous add is done (II = the adder's latency).
Iteration r adding into lane r % lanes instead depends on iteration r - lanes: with as many
lanes as the adder has stages, one iteration starts every cycle.
"""

from __future__ import annotations

from deepc.ir.expr import INDEX, Binary, Const, Expr, Load, Var, binary
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    find_loop,
    loops,
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.schedule.stmt_rewrite import map_stmt


def accumulator(loop: For) -> Store | None:
    """The one store in `loop` of the form `acc[i] = acc[i] <op> x` where no loop inside `loop`
    (nor `loop` itself) indexes acc and x does not read acc; None otherwise."""
    own = {x.var.name for x in loops(loop)}
    found: list[Store] = []
    for s in walk_stmts(loop.body):
        if not isinstance(s, Store):
            continue
        names = {v.name for i in s.indices for v in walk(i) if isinstance(v, Var)}
        if names & own or not any(isinstance(e, Load) and e.source == s.buffer
                                  for e in walk(s.value)):
            continue
        v, same = s.value, Load(s.buffer, s.indices)
        if not (isinstance(v, Binary) and same in (v.a, v.b)
                and same not in walk(v.b if v.a == same else v.a)):
            return None
        found.append(s)
    return found[0] if len(found) == 1 else None


def _tree_sum(terms: list[Expr]) -> Expr:
    """A balanced sum: log2(n) adders deep instead of n."""
    while len(terms) > 1:
        pairs = [binary("add", terms[k], terms[k + 1]) for k in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(terms) - len(terms) % 2:]
    return terms[0]


def interleave(f: PrimFunc, loop: str, lanes: int) -> PrimFunc:
    """Accumulate `loop`'s running sum in `lanes` partial sums (see the module).

        acc[0] = 0
        for r in 0..64 { acc[0] = acc[0] + x[r] }
    interleave(r, 4) ->
        acc[0] = 0
        acc_lanes[4] (scope lanes): for r_lane in 0..4 unrolled { acc_lanes[r_lane] = 0 }
                      for r in 0..64 { acc_lanes[r % 4] = acc_lanes[r % 4] + x[r] }
                      acc[0] = acc[0] + ((acc_lanes[0] + acc_lanes[1]) + (acc_lanes[2] + ...))
    """
    target = find_loop(f.body, loop)
    acc = accumulator(target)
    if acc is None or lanes < 2 or acc.value.op != "add":  # type: ignore[attr-defined]
        raise ValueError(f"loop {loop} has no single running sum to interleave")
    part = Buffer(f"{acc.buffer.name}_lanes", (lanes,), acc.buffer.dtype, "lanes")
    lane = binary("mod", target.var, lanes)
    old = Load(acc.buffer, acc.indices)

    def add_to_lane(s: Stmt) -> Stmt | None:
        if s != acc:
            return None
        v = acc.value
        x = v.b if v.a == old else v.a  # type: ignore[attr-defined]
        return Store(part, (lane,), binary("add", Load(part, (lane,)), x))

    def fn(s: Stmt) -> Stmt | None:
        if not (isinstance(s, For) and s.var.name == loop):
            return None
        zero = Const(0.0, part.dtype)
        k = Var(f"{loop}_lane")
        init = For(k, lanes, ForKind.UNROLLED, Store(part, (k,), zero))
        total = _tree_sum([Load(part, (Const(j, INDEX),)) for j in range(lanes)])
        fold = Store(acc.buffer, acc.indices, binary("add", old, total))
        return Allocate(part, Seq((init, map_stmt(s, add_to_lane), fold)))

    return f.with_body(map_stmt(f.body, fn))

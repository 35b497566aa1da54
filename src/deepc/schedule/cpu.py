"""Default CPU schedules derived from the target: threads over outer loops, vector lanes
over contiguous inner loops. No tuning needed; `deepc tune` searches the same knobs."""

from __future__ import annotations

from deepc.ir.expr import Var
from deepc.ir.loop import (
    Allocate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    walk_stmts,
)
from deepc.schedule.cpu_reduction import best_factor, plan_reduction_tile
from deepc.schedule.schedule import Schedule

MIN_PARALLEL_WORK = 1 << 14  # iterations below which threads cost more than they save


def top_level_nests(s: Stmt) -> list[For]:
    if isinstance(s, For):
        return [s]
    if isinstance(s, Allocate):
        return top_level_nests(s.body)
    if isinstance(s, Seq):
        return [n for x in s.stmts for n in top_level_nests(x)]
    return []


def perfect_chain(loop: For) -> list[For]:
    chain = [loop]
    while isinstance(chain[-1].body, For):
        chain.append(chain[-1].body)
    return chain


def work(loop: For) -> int:
    total = 0
    for s in walk_stmts(loop):
        if isinstance(s, Store):
            total += 1
    iters = 1
    for x in walk_stmts(loop):
        if isinstance(x, For):
            iters = max(iters, _trip(loop, x))
    return iters * max(total, 1)


def _trip(root: For, target: For) -> int:
    """Iterations of `target`'s body counting all enclosing loops from root."""
    def go(s: Stmt, acc: int) -> int | None:
        if s is target:
            return acc * target.extent
        if isinstance(s, For):
            return go(s.body, acc * s.extent)
        if isinstance(s, Allocate):
            return go(s.body, acc)
        if isinstance(s, Seq):
            for x in s.stmts:
                r = go(x, acc)
                if r is not None:
                    return r
        if isinstance(s, IfThenElse):
            for x in (s.then, s.otherwise):
                if x is not None:
                    r = go(x, acc)
                    if r is not None:
                        return r
        return None

    return go(root, 1) or 1


def default_schedule(f: PrimFunc, vector_bits: int, cores: int,
                     target: object | None = None) -> Schedule:
    from deepc.schedule.cpu_gemm import CacheSizes, plan_gemm

    sch = Schedule()
    serial = set(f.attrs.get("serial_nests", ()))
    for nest in top_level_nests(f.body):
        if nest.var.name in serial:
            continue
        chain = perfect_chain(nest)
        inner = chain[-1]
        gemm = plan_gemm(chain, vector_bits, cores, CacheSizes.of(target))
        if gemm is not None:  # packed GEMM (cpu_gemm)
            for step in gemm.steps:
                sch.add(*step)
            _parallel(sch, gemm.parallel, nest, cores)
            continue
        tile = plan_reduction_tile(chain, vector_bits)
        if tile is not None:
            for step in tile.steps:
                sch.add(*step)
            _parallel(sch, tile.outer, nest, cores)
            continue
        if (isinstance(inner.body, Store) and inner.kind is ForKind.SERIAL
                and contiguous_store(inner.body, inner.var)):
            lanes = max(vector_bits // (8 * _itemsize(inner.body.buffer.dtype)), 1)
            # a vector of the whole loop, or of a divisor of it that fills half the lanes
            width = best_factor(inner.extent, lanes)
            if width >= 2 and lanes > 1 and inner.extent % width == 0:
                if inner.extent > width:
                    sch.add("split", inner.var.name, width)
                    sch.add("vectorize", f"{inner.var.name}_i")
                    chain[-1] = For(Var(f"{inner.var.name}_o"), inner.extent // width,
                                    ForKind.SERIAL, inner.body)
                else:
                    sch.add("vectorize", inner.var.name)
                    chain = chain[:-1]
        _parallel(sch, [(c.var.name, c.extent) for c in chain], nest, cores)
    return sch


def contiguous_store(store: Store, var: Var) -> bool:
    """Each iteration writes the next element (a reduction into one place is not)."""
    from deepc.ir.affine import affine, flat_offset

    return affine(flat_offset(store.buffer.shape, store.indices)).coef(var) == 1


def _parallel(sch: Schedule, chain: list[tuple[str, int]], nest: For, cores: int) -> None:
    """Spread the outer loops over the cores, fusing loops until there is enough work."""
    if cores < 2 or not chain or work(nest) < MIN_PARALLEL_WORK:
        return
    name, extent = chain[0]
    k = 1
    while extent < 4 * cores and k < len(chain):
        sch.add("fuse", name, chain[k][0])
        name, extent = f"{name}_{chain[k][0]}", extent * chain[k][1]
        k += 1
    if extent > 1:
        sch.add("parallel", name)


def _itemsize(dtype: str) -> int:
    from deepc.ir.types import itemsize

    return max(itemsize(dtype), 1)

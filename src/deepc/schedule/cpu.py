"""Default CPU schedules derived from the target: threads over outer loops, vector lanes
over contiguous inner loops. No tuning needed; `deepc tune` searches the same knobs."""

from __future__ import annotations

from typing import Any

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
from deepc.schedule.cpu_gemm import plan_gemm
from deepc.schedule.cpu_machine import CpuMachine
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


def default_schedule(f: PrimFunc, machine: CpuMachine) -> Schedule:
    """Each top-level loop nest's schedule, from the machine's vector width and registers,
    caches and cores; the knobs chosen are named in the schedule (per nest where several)."""
    sch = Schedule()
    serial = set(f.attrs.get("serial_nests", ()))
    nests = [n for n in top_level_nests(f.body) if n.var.name not in serial]
    for nest in nests:
        knobs = _schedule_nest(sch, nest, machine)
        prefix = f"{nest.var.name}." if len(nests) > 1 else ""
        sch.knobs.update({f"{prefix}{k}": v for k, v in knobs.items()})
    return sch


def _schedule_nest(sch: Schedule, nest: For, machine: CpuMachine) -> dict[str, Any]:
    chain = perfect_chain(nest)
    inner = chain[-1]
    cores = machine.cores
    gemm = plan_gemm(chain, machine)
    if gemm is not None:  # packed GEMM (cpu_gemm)
        for step in gemm.steps:
            sch.add(*step)
        return {"kind": "packed_gemm", **gemm.knobs,
                "threads": _parallel(sch, gemm.parallel, nest, cores)}
    tile = plan_reduction_tile(chain, machine)
    if tile is not None:
        for step in tile.steps:
            sch.add(*step)
        return {"kind": "register_tile", **tile.knobs,
                "threads": _parallel(sch, tile.outer, nest, cores)}
    width = 1
    if (isinstance(inner.body, Store) and inner.kind is ForKind.SERIAL
            and contiguous_store(inner.body, inner.var)):
        lanes = machine.lanes(inner.body.buffer.dtype)
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
        else:
            width = 1
    threads = _parallel(sch, [(c.var.name, c.extent) for c in chain], nest, cores)
    return {"kind": "vector" if width > 1 else "loop", "vector": width, "threads": threads}


def contiguous_store(store: Store, var: Var) -> bool:
    """Each iteration writes the next element (a reduction into one place is not)."""
    from deepc.ir.affine import affine, flat_offset

    return affine(flat_offset(store.buffer.shape, store.indices)).coef(var) == 1


def _parallel(sch: Schedule, chain: list[tuple[str, int]], nest: For, cores: int) -> int:
    """Spread the outer loops over the cores, fusing loops until there is enough work; the
    parallel loop's iterations (1: the nest runs on one thread)."""
    if cores < 2 or not chain or work(nest) < MIN_PARALLEL_WORK:
        return 1
    name, extent = chain[0]
    k = 1
    while extent < 4 * cores and k < len(chain):
        sch.add("fuse", name, chain[k][0])
        name, extent = f"{name}_{chain[k][0]}", extent * chain[k][1]
        k += 1
    if extent > 1:
        sch.add("parallel", name)
    return extent


def _itemsize(dtype: str) -> int:
    from deepc.ir.types import itemsize

    return max(itemsize(dtype), 1)

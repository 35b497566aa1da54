"""Default CPU schedules derived from the target: threads over outer loops, vector lanes
over contiguous inner loops. No tuning needed; `deepc tune` searches the same knobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepc.errors import ScheduleError
from deepc.ir.expr import Binary, Var
from deepc.ir.loop import (
    Allocate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    find_loop,
    walk_stmts,
)
from deepc.ir.tensor import IN_ORDER
from deepc.schedule.cpu_gemm import plan_gemm
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.cpu_prefetch import plan_prefetch
from deepc.schedule.cpu_reduce_loops import (
    plan_outer_order,
    plan_reduce_blocks,
    plan_reduce_loops,
)
from deepc.schedule.cpu_reduction import best_factor, plan_reduction_tile, plan_row_reduction
from deepc.schedule.cpu_rows import merge_rows
from deepc.schedule.cpu_tile_blocks import step_unroll
from deepc.schedule.interior import masked
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


KNOBS = {"kind", "vector", "rows", "row_pairs", "pair_block", "row_loop", "reduce_inner",
         "unroll", "outer_inner", "sweep", "reduce_blocks", "pack", "panel", "prefetch",
         "threads", "merge_rows"}
DERIVED = {"panel"}  # follows from the others; a record's value is not read back


def default_schedule(f: PrimFunc, machine: CpuMachine,
                     knobs: Mapping[str, Any] | None = None) -> Schedule:
    """Each top-level loop nest's schedule, from the machine's vector width and registers,
    caches and cores; the knobs chosen are named in the schedule (per nest where several).

    `knobs` (a record's, or a tuning candidate's: the default's with some changed) override
    the choices, so a record's knobs replay to its steps; knobs that a nest cannot take
    raise ScheduleError rather than being adjusted."""
    sch = Schedule()
    serial = set(f.attrs.get("serial_nests", ()))
    nests = [n for n in top_level_nests(f.body) if n.var.name not in serial]
    prefixes = [f"{n.var.name}." if len(nests) > 1 else "" for n in nests]
    wanted = [_nest_knobs(knobs or {}, p) for p in prefixes]
    unknown = set(knobs or {}) - {f"{p}{k}" for p in prefixes for k in KNOBS}
    if unknown:
        raise ScheduleError(f"unknown knobs {sorted(unknown)} for kernel {f.name}"
                            f" (it has {len(nests)} nests; knobs: {sorted(KNOBS)})")
    for nest, prefix, want in zip(nests, prefixes, wanted):
        merged: dict[str, Any] = {}
        if want.pop("merge_rows", True):
            f, fused = merge_rows(f, perfect_chain(nest), machine)
            top = nest.var.name
            for outer, inner in fused:
                sch.add("fuse", outer, inner)
                top = f"{outer}_{inner}" if outer == top else top
            if fused:
                nest = find_loop(f.body, top)
                merged = {"merge_rows": True}
        chosen = _schedule_nest(sch, nest, machine, want, bool(f.attrs.get(IN_ORDER)))
        sch.knobs.update({f"{prefix}{k}": v for k, v in {**merged, **chosen}.items()})
    return sch


def _float_sum(body: Stmt) -> bool:
    """Whether the nest accumulates float sums or products, whose partial accumulators
    (rfactor) would reorder the terms; a max or min comes out the same in any order."""
    return any(isinstance(s, Store) and s.buffer.scope == "local" and "float" in s.buffer.dtype
               and isinstance(s.value, Binary) and s.value.op in ("add", "mul")
               for s in walk_stmts(body))


def _nest_knobs(knobs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    found = {k[len(prefix):]: v for k, v in knobs.items() if k.startswith(prefix)}
    return {k: v for k, v in found.items() if k in KNOBS and k not in DERIVED}


def _schedule_nest(sch: Schedule, nest: For, machine: CpuMachine,
                   want: dict[str, Any], in_order: bool = False) -> dict[str, Any]:
    chain = perfect_chain(nest)
    inner = chain[-1]
    cores = machine.cores
    kind = want.pop("kind", None)
    if "pack" not in want and kind in ("packed_gemm", "register_tile"):
        want["pack"] = kind == "packed_gemm"
    gemm = None if want.get("pack") is False else plan_gemm(chain, machine, want)
    if gemm is not None:  # packed GEMM (cpu_gemm)
        if want.get("outer_inner", 0):
            raise ScheduleError("outer_inner: a packed GEMM keeps its panels outside its rows")
        if want.get("reduce_blocks", 1) != 1:
            raise ScheduleError("reduce_blocks: a packed GEMM blocks its reduction in panels")
        loops = plan_reduce_loops(chain[-1].body, want)
        for step in gemm.steps + loops[0]:
            sch.add(*step)
        return {"kind": "packed_gemm", **gemm.knobs, **loops[1],
                "threads": _parallel(sch, gemm.parallel, nest, cores, want.get("threads"))}
    tile_want = {k: v for k, v in want.items() if k != "pack"}
    tile = plan_reduction_tile(chain, machine, tile_want)
    if tile is not None:
        if not {"unroll", "reduce_inner"} & set(want):
            steps = step_unroll(tile.knobs, chain[-1].body, machine)
            want = {**want, "unroll": steps} if steps else want
        loops = plan_reduce_loops(chain[-1].body, want)
        order, outer, outer_knobs = plan_outer_order(tile.outer, want)
        blocked = plan_reduce_blocks(chain[-1].body, outer, want)
        # the reduction loops and outer loops named as the tile left them (no reorder, split
        # or blocks; a whole loop unrolled keeps its name)
        renamed = any(step[0] != "unroll" for step in loops[0])
        plain_loops = not (renamed or order or blocked[0] or tile.knobs.get("sweep"))
        fetch = (plan_prefetch(chain, outer, machine, want) if plain_loops
                 else _no_prefetch(want))
        for step in tile.steps + loops[0] + order + blocked[0] + fetch[0]:
            sch.add(*step)
        if masked(chain[-1].body):  # taps over the padding: bare tiles inside the image
            sch.add("version_interior", chain[-1].body.buffer.name)
        return {"kind": "register_tile", **tile.knobs, **loops[1], **outer_knobs, **blocked[1],
                **fetch[1], "threads": _parallel(sch, outer, nest, cores, want.get("threads"))}
    row = (plan_row_reduction(chain, machine, want.get("vector"))
           if want.get("vector", 0) != 1 and not (in_order and _float_sum(chain[-1].body))
           else None)
    plain = not set(want) - {"vector", "threads"}  # tile knobs on another nest: an error
    if row is not None and kind in (None, "row_reduction") and plain:
        for step in row.steps:
            sch.add(*step)
        return {"kind": "row_reduction", **row.knobs,
                "threads": _parallel(sch, row.outer, nest, cores, want.get("threads"))}
    if not plain or kind in ("packed_gemm", "register_tile"):
        raise ScheduleError(f"knobs {sorted(want)} need a reduction nest; {nest.var.name}"
                            " takes vector and threads only")
    width = 1
    if (isinstance(inner.body, Store) and inner.kind is ForKind.SERIAL
            and contiguous_store(inner.body, inner.var)):
        lanes = machine.lanes(inner.body.buffer.dtype)
        # a vector of the whole loop, or of a divisor of it that fills half the lanes
        width = want.get("vector", best_factor(inner.extent, lanes))
        if "vector" in want and width > 1 and (width > inner.extent or inner.extent % width):
            raise ScheduleError(f"vector={width} does not divide the loop {inner.var.name}"
                                f" ({inner.extent})")
        if width >= 2 and (lanes > 1 or "vector" in want) and inner.extent % width == 0:
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
    elif want.get("vector", 1) != 1:
        raise ScheduleError(f"vector={want['vector']}: the loop {inner.var.name} does not"
                            " store contiguously")
    threads = _parallel(sch, [(c.var.name, c.extent) for c in chain], nest, cores,
                        want.get("threads"))
    return {"kind": "vector" if width > 1 else "loop", "vector": width, "threads": threads}


def _no_prefetch(want: dict[str, Any]) -> tuple[list[tuple], dict[str, Any]]:
    if want.get("prefetch"):
        raise ScheduleError("prefetch=True: the nest's loops are reordered or blocked")
    return [], {}


def contiguous_store(store: Store, var: Var) -> bool:
    """Each iteration writes the next element (a reduction into one place is not)."""
    from deepc.ir.affine import affine, flat_offset

    return affine(flat_offset(store.buffer.shape, store.indices)).coef(var) == 1


def _parallel(sch: Schedule, chain: list[tuple[str, int]], nest: For, cores: int,
              want: int | None = None) -> int:
    """Spread the outer loops over the cores, fusing loops until there is enough work; the
    parallel loop's iterations (1: the nest runs on one thread). `want` asks for a given
    number of iterations: outer loops are fused until they reach it exactly, or it raises."""
    if want == 1 or (want is None and (cores < 2 or not chain
                                        or work(nest) < MIN_PARALLEL_WORK)):
        return 1
    if not chain:
        raise ScheduleError(f"threads={want}: the nest has no loop left to run in parallel")
    name, extent = chain[0]
    k = 1
    goal = 4 * cores

    def more(extent: int, k: int) -> bool:  # replaying `want`, trailing 1-loops fuse as before
        if want is None:
            return extent < goal
        return extent < want or (extent < goal and chain[k][1] == 1)

    while k < len(chain) and more(extent, k):
        sch.add("fuse", name, chain[k][0])
        name, extent = f"{name}_{chain[k][0]}", extent * chain[k][1]
        k += 1
    if want is not None and extent != want:
        raise ScheduleError(f"threads={want}: fusing the outer loops gives {extent}")
    if extent > 1:
        sch.add("parallel", name)
    return extent


def _itemsize(dtype: str) -> int:
    from deepc.ir.types import itemsize

    return max(itemsize(dtype), 1)

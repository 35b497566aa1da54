"""A convolution's padding copy folded into the tiled matrix product that reads it.

A conv over a padded input lowers to two stages (ir/lower.py): a copy of the input into a
zero-padded scratch buffer, then the product over windows of that buffer. On the GPU the
copy is a launch of its own and a whole extra read and write of the activation. Where the
product is tiled, its reads of the scratch buffer become the copy's own expression at the
read indices, `inside ? x[...] : 0`, which the tiled kernel fetches as a guarded direct
operand (gpu_gemm_operand.py): a per-thread mask of the window taps that fall inside x.

    alloc pad: float32[1x64x58x58] global
    for i0, i1, i2, i3 { pad[i0, i1, i2, i3] = select(cond(i2, i3), x[i0, i1, i2-1, i3-1], 0) }
    for n, m, oh, ow { acc = 0; for rc, r0, r1 { acc += pad[n, rc, oh+r0, ow+r1] * w[...] } ...}
  fold_pads ->
    for n, m, oh, ow { acc = 0; for rc, r0, r1 {
      acc += select(cond(oh+r0, ow+r1), x[n, rc, oh+r0-1, ow+r1-1], 0) * w[...] } ... }
"""

from __future__ import annotations

from collections.abc import Callable

from deepc.ir.expr import Const, Expr, Load, Select, Var
from deepc.ir.loop import Buffer, For, ForKind, PrimFunc, Stmt, Store, walk_stmts
from deepc.ir.rewrite import substitute
from deepc.ir.tensor import walk
from deepc.schedule.gpu_gemm_match import match_gemm
from deepc.schedule.gpu_gemm_operand import direct
from deepc.schedule.stmt_rewrite import map_exprs, rewrite_loads


def _copy_nest(s: Stmt) -> tuple[Buffer, tuple[Var, ...], Expr] | None:
    """(buffer, loop variables, value) of a perfect nest storing buf[i0, i1, ...] = value."""
    names: list[Var] = []
    while isinstance(s, For) and s.kind == ForKind.SERIAL and s.start == 0 and s.step == 1:
        names.append(s.var)
        s = s.body
    if not isinstance(s, Store) or tuple(s.indices) != tuple(names) or not names:
        return None
    return s.buffer, tuple(names), s.value


def _reads(s: Stmt, buf: Buffer) -> bool:
    """Whether any expression of `s` (stores, lets, conditions, intrinsic arguments) loads
    `buf`, or `s` stores to it."""
    seen: list[bool] = []

    def look(e: Expr) -> Expr:
        seen.extend(True for x in walk(e) if isinstance(x, Load) and x.source.name == buf.name)
        return e

    map_exprs(s, look)
    stores = any(isinstance(st, Store) and st.buffer.name == buf.name for st in walk_stmts(s))
    return bool(seen) or stores


def _guarded_product(func: PrimFunc, pad: Buffer) -> bool:
    """Whether `func` is a matrix product whose A operand is a guarded direct load and no
    longer reads `pad`."""
    parts = match_gemm(func)
    if parts is None or _reads(func.body, pad):
        return False
    da = direct(parts.a, parts.m_axes + parts.g_axes, parts.k_axes, fused=True)
    return da is not None and da.mask is not None


# Tiled products read their padding in place (a per-thread tap mask, one shift and test per
# element), where a fold of Dec 2 (guards decoded per element from an int4 table) had run
# ResNet-18 2x slower. Timed on an H100 at batch 32, TF32 (tools/ab_bench.py, same outputs
# bit for bit): ResNet-18 1.93 -> 1.72 ms, ResNeXt-50 6.58 -> 6.12, DenseNet-121 5.48 -> 4.92,
# MobileNet-V2 and EfficientNet-B0 unchanged. False restores the padded copies.
FOLD_TILED = True

# Untiled stages (one output per thread, depthwise convs, warp reductions) read their padding
# in place too, the window bounds tested per tap: on the same H100 run MobileNet-V2 1.80 ->
# 1.39 ms and EfficientNet-B0 3.00 -> 2.48 (their depthwise inputs' padded copies gone), the
# tiled models unchanged.
FOLD_UNTILED = True


def _is_padding(value: Expr) -> bool:
    """A copy's value that is an element of its source or zero (no computation to repeat
    for every read)."""
    return (
        isinstance(value, Select)
        and isinstance(value.t, Load)
        and isinstance(value.f, Const)
        and value.f.value == 0
    )


def fold_pads(
    func: PrimFunc,
    stmts: list[Stmt],
    scratch: tuple[Buffer, ...],
    tiled: Callable[[int, PrimFunc], bool],
) -> tuple[list[tuple[int, Stmt]], tuple[Buffer, ...]]:
    """The kernel's stages, each with its index among `stmts`, after folding every padding
    copy into the one stage that reads it, where that stage is a product `tiled(index,
    stage)` says is tiled and its padded operand becomes a guarded direct load (with
    FOLD_UNTILED, also into a stage that is not tiled); the scratch buffers less the folded
    copies'."""
    out = list(enumerate(stmts))
    dropped: set[str] = set()
    for k, s in enumerate(stmts):
        nest = _copy_nest(s)
        if nest is None or nest[0] not in scratch:
            continue
        pad, names, value = nest
        readers = [j for j, (_, t) in enumerate(out) if out[j][0] != k and _reads(t, pad)]
        if len(readers) != 1:
            continue
        j = readers[0]
        index, reader = out[j]

        def fold(
            e: Expr, pad: Buffer = pad, names: tuple[Var, ...] = names, value: Expr = value
        ) -> Expr | None:
            if isinstance(e, Load) and e.source.name == pad.name:
                return substitute(value, dict(zip(names, e.indices)))
            return None

        folded = rewrite_loads(reader, fold)
        stage = PrimFunc(func.name, func.params, folded, dict(func.attrs))
        if tiled(index, stage):
            if not (FOLD_TILED and _guarded_product(stage, pad)):
                continue
        elif not (FOLD_UNTILED and _is_padding(value)):
            continue
        out[j] = (index, folded)
        out = [(i, t) for i, t in out if i != k]
        dropped.add(pad.name)
    return out, tuple(b for b in scratch if b.name not in dropped)


__all__ = ["fold_pads"]

"""Prefix scans along one axis: `cumsum` and `cumprod` (inclusive or exclusive, either way)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.loop import Buffer, For, ForKind, Stmt, Store, seq
from deepc.ir.tensor import Tensor, extern
from deepc.ir.types import TensorType
from deepc.ops.indices import check_axis
from deepc.ops.loop_nests import loop_nest, row_loops
from deepc.ops.registry import FusionKind, Op


def _register_scan(name: str, what: str, running: Callable[..., np.ndarray],
                   combine: Callable[[E.Expr, E.Expr], E.Expr], identity: int) -> Op:
    """A scan op: `running(x, axis, dtype)` is numpy's inclusive scan, `combine(acc, x)` one
    step of it, `identity` the value an exclusive scan starts with."""
    # each output needs all earlier inputs, so it fuses like a sort, not a reduction
    op = Op(name, FusionKind.OPAQUE,
            doc=f"running {what} along attrs['axis']; attrs exclusive (shift by one) and "
                "reverse")

    @op.infer
    def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
        x = ins[0]
        assert x is not None
        check_axis(int(attrs["axis"]), x.rank)
        return x

    @op.reference
    def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
        x, axis = ins[0], int(attrs["axis"])
        y = np.flip(x, axis) if attrs["reverse"] else x
        out = running(y, axis=axis, dtype=x.dtype)
        if attrs["exclusive"]:
            # shifting rather than undoing the last step keeps float results exact
            pad = [(1, 0) if d == axis else (0, 0) for d in range(out.ndim)]
            out = np.take(np.pad(out, pad, constant_values=identity), np.arange(out.shape[axis]),
                          axis=axis)
        return np.flip(out, axis) if attrs["reverse"] else out

    @op.def_compute
    def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
        """Per row of the axes before `axis`, a loop along it combining each input with the
        previous output, the axes after it innermost (contiguous and independent). An
        exclusive scan starts one position later with the first input, so results equal the
        reference's (shifted inclusive scans) bit for bit, signed zeros included."""
        x, axis = ins[0], int(attrs["axis"])
        n, reverse, shift = x.shape[axis], bool(attrs["reverse"]), int(bool(attrs["exclusive"]))
        inner = x.shape[axis + 1:]

        def build(bufs: Sequence[Buffer], out_bufs: Sequence[Buffer]) -> Stmt:
            (src,), (out,) = bufs, out_bufs

            def row(o: tuple[E.Var, ...]) -> Stmt:
                def at(t: E.Expr | int, i: tuple[E.Var, ...]) -> tuple[E.Expr, ...]:
                    return (*o, E.as_expr((n - 1) - t if reverse else t), *i)

                def nest(prefix: str, t: E.Expr | int, value: Callable[..., E.Expr]) -> Stmt:
                    return loop_nest(inner, prefix, lambda i: Store(out, at(t, i), value(i)))

                t = E.Var(f"{name}_t")  # writes position t + shift + 1
                step = nest(f"{name}_i", t + (shift + 1),
                            lambda i: combine(out[at(t + shift, i)], src[at(t + 1, i)]))
                return seq(
                    nest(f"{name}_z", 0, lambda i: E.const(identity, x.dtype)) if shift
                    else None,
                    nest(f"{name}_f", shift, lambda i: src[at(0, i)]) if n > shift else None,
                    For(t, n - 1 - shift, ForKind.SERIAL, step) if n - 1 - shift > 0 else None)

            return row_loops(x.shape[:axis], f"{name}_r", row) if n else seq()

        return extern(name, [x], [(x.shape, x.dtype)], build)[0]

    @op.flops
    def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
        return outs[0].size

    return op


cumsum = _register_scan("cumsum", "sum", np.cumsum, lambda acc, v: acc + v, 0)
cumprod = _register_scan("cumprod", "product", np.cumprod, lambda acc, v: acc * v, 1)

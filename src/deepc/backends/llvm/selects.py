"""How the LLVM backend emits a select: both sides computed and one picked (a vector select
where the lanes differ), a branch where a side may not be evaluated (a load past a buffer),
and a clamp's compared value emitted once for its compare and its side."""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from deepc.backends.llvm.analysis import unsafe_select
from deepc.ir.expr import Binary, Expr, Select


class SelectValues:
    builder: ir.IRBuilder
    lanes: int
    vec_var: Any
    shared: dict[Expr, ir.Value]  # values a select's compare and sides share
    emit: Any
    unify: Any
    broadcast: Any

    def emit_select(self, e: Select) -> ir.Value:
        if unsafe_select(e):
            return self.emit_guarded_select(e)
        if isinstance(e.cond, Binary) and {e.t, e.f} & {e.cond.a, e.cond.b}:
            # a clamp select(y > lo, y, lo): y emitted once, or fast-math could fold the two
            # copies differently and compare one value but pick the other
            saved = self.shared
            self.shared = {**saved, e.cond.a: self.emit(e.cond.a), e.cond.b: self.emit(e.cond.b)}
            try:
                return self._select_values(e)
            finally:
                self.shared = saved
        return self._select_values(e)

    def _select_values(self, e: Select) -> ir.Value:
        c = self.emit(e.cond)
        t, f = self.unify(self.emit(e.t), self.emit(e.f))
        if isinstance(t.type, ir.VectorType) and not isinstance(c.type, ir.VectorType):
            c = self.broadcast(c, t.type.count)
        elif isinstance(c.type, ir.VectorType) and not isinstance(t.type, ir.VectorType):
            t, f = self.broadcast(t, c.type.count), self.broadcast(f, c.type.count)
        return self.builder.select(c, t, f)

    def emit_guarded_select(self, e: Select) -> ir.Value:
        """Branches so the discarded side is never evaluated (a lane-invariant test in vector
        code, codegen.vectorizable; each side then a vector of the lanes)."""
        bld = self.builder
        c = self.emit(e.cond)
        if isinstance(c.type, ir.VectorType):
            raise TypeError("guarded select in vector code")
        then_bb, else_bb = bld.append_basic_block("sel.t"), bld.append_basic_block("sel.f")
        end_bb = bld.append_basic_block("sel.end")
        bld.cbranch(c, then_bb, else_bb)
        bld.position_at_end(then_bb)
        tv = self.broadcast(self.emit(e.t), self.lanes) if self.vec_var else self.emit(e.t)
        then_end = bld.block
        bld.branch(end_bb)
        bld.position_at_end(else_bb)
        fv = self.broadcast(self.emit(e.f), self.lanes) if self.vec_var else self.emit(e.f)
        else_end = bld.block
        bld.branch(end_bb)
        bld.position_at_end(end_bb)
        phi = bld.phi(tv.type)
        phi.add_incoming(tv, then_end)
        phi.add_incoming(fv, else_end)
        return phi

"""Lowering: tensor expressions of a fused group into one loop-IR function.

Stages that are not reductions, externs, outputs or padding read by a reduction are inlined
into their consumers. Each
remaining stage becomes a loop nest over its shape; a reduction accumulates in a register
(a one-element local buffer), and an elementwise consumer that reads a reduction at its own
indices is applied to the accumulator before the store (epilogue fusion), so conv + bias +
activation is one loop nest with one store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from deepc.ir.expr import Expr, Load, Var, binary
from deepc.ir.loop import Allocate, Buffer, For, ForKind, PrimFunc, Stmt, Store, seq
from deepc.ir.rewrite import inline, map_expr, substitute
from deepc.ir.tensor import IN_ORDER, MATERIALIZED, Reduce, Tensor, stages, tensors_read


def _ident(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


class _Lowering:
    def __init__(self, inputs: Sequence[Tensor], outputs: Sequence[Tensor]):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.order = stages(outputs)
        missing = [t for t in self.order if t.is_placeholder and not any(t is i for i in inputs)]
        if missing:
            raise ValueError(f"placeholders {[t.name for t in missing]} are not inputs")
        out_ids = {id(t) for t in outputs}
        # padding read by a reduction is computed once into a buffer rather than inlined:
        # the reduction's loads then need no bounds tests and vectorize
        padded_inputs = {id(src) for t in self.order if t.is_reduction
                         for src in t.inputs() if src.tag in ("pad", MATERIALIZED)}
        self.materialized = {
            id(t) for t in self.order
            if t.is_placeholder or t.extern is not None or t.is_reduction or id(t) in out_ids
            or id(t) in padded_inputs
        }
        # consumers among materialized stages, seen through inlined ones
        self.users: dict[int, list[Tensor]] = {}
        for t in self.order:
            if id(t) not in self.materialized or t.is_placeholder:
                continue
            srcs = t.inputs() if t.extern is not None else tensors_read(self.body_expr_raw(t))
            for src in srcs:
                self.users.setdefault(id(src), []).append(t)
        self.names: set[str] = set()
        self.buffers: dict[int, Buffer] = {}
        for t in [*inputs, *outputs]:
            self.buffers[id(t)] = Buffer(self._unique(t.name), t.shape, t.dtype)
        self.var_names: dict[Var, Var] = {}

    def _unique(self, name: str) -> str:
        base = _ident(name) or "t"
        candidate, k = base, 1
        while candidate in self.names:
            k += 1
            candidate = f"{base}_{k}"
        self.names.add(candidate)
        return candidate

    def buffer(self, t: Tensor) -> Buffer:
        if id(t) not in self.buffers:
            self.buffers[id(t)] = Buffer(self._unique(t.name), t.shape, t.dtype)
        return self.buffers[id(t)]

    def fresh_var(self, v: Var) -> Var:
        if v not in self.var_names:
            self.var_names[v] = Var(self._unique(v.name))
        return self.var_names[v]

    def body_expr(self, e: Expr) -> Expr:
        """Inline non-materialized stages and turn loads of tensors into loads of buffers."""
        e = inline(e, lambda t: id(t) not in self.materialized)

        def to_buffer(x: Expr) -> Expr | None:
            if isinstance(x, Load) and isinstance(x.source, Tensor):
                return Load(self.buffer(x.source), x.indices)
            return None

        return map_expr(e, to_buffer)

    def epilogue_of(self, t: Tensor, fused: set[int]) -> Tensor | None:
        """The single elementwise consumer that can be applied to `t`'s accumulator: it
        reads `t` only at its own indices, is not fused elsewhere, and everything else it
        reads is computed before `t`."""
        users = self.users.get(id(t), [])
        if not t.is_reduction or len(users) != 1 or any(t is o for o in self.outputs):
            return None
        user = users[0]
        if user.body is None or user.is_reduction or user.shape != t.shape or id(user) in fused:
            return None
        body = self.body_expr_raw(user)
        for node in _loads_of(body, t):
            if not _same_point(node.indices, user.axes, t.shape):
                return None
        position = {id(s): k for k, s in enumerate(self.order)}
        for src in tensors_read(body):
            if src is not t and not src.is_placeholder and position[id(src)] > position[id(t)]:
                return None
        return user

    def body_expr_raw(self, t: Tensor) -> Expr:
        assert t.body is not None
        body = t.body.body if isinstance(t.body, Reduce) else t.body
        return inline(body, lambda s: id(s) not in self.materialized)

    def run(self, name: str) -> PrimFunc:
        stmts: list[Stmt] = []
        allocs: list[Buffer] = []
        fused_into: set[int] = set()
        externs_done: set[int] = set()
        serial: list[str] = []
        for t in self.order:
            if t.is_placeholder or id(t) in fused_into or id(t) not in self.materialized:
                continue
            if t.extern is not None:
                if id(t.extern) not in externs_done:  # one loop nest for all its outputs
                    externs_done.add(id(t.extern))
                    stmts.append(self.lower_extern(t))
                    serial += _outer_loop_names(stmts[-1])
                    out_ids = {id(o) for o in self.outputs}
                    allocs += [self.buffer(o) for o in t.extern.outputs if id(o) not in out_ids]
                continue
            epi = self.epilogue_of(t, fused_into)
            target = epi if epi is not None else t
            if epi is not None:
                fused_into.add(id(epi))
            if not any(target is o for o in self.outputs):
                allocs.append(self.buffer(target))
            stmts.append(self.lower_stage(t, epi))
        body: Stmt = seq(*stmts)
        for buf in reversed(allocs):
            body = Allocate(buf, body)
        params = tuple(self.buffer(t) for t in [*self.inputs, *self.outputs])
        # hand-written loops may carry dependences between iterations: schedules leave them
        attrs: dict[str, object] = {"serial_nests": serial}
        if any(t.tag == IN_ORDER for t in self.order):
            attrs[IN_ORDER] = True
        return PrimFunc(_ident(name), params, body, attrs)

    def lower_extern(self, t: Tensor) -> Stmt:
        op = t.extern
        assert op is not None
        outs = op.outputs or sorted((o for o in self.order if o.extern is op),
                                    key=lambda o: o.extern_index)
        return op.build([self.buffer(i) for i in op.inputs], [self.buffer(o) for o in outs])

    def lower_stage(self, t: Tensor, epi: Tensor | None) -> Stmt:
        assert t.body is not None
        axes = [self.fresh_var(v) for v in t.axes]
        env = dict(zip(t.axes, axes))
        out_t = epi if epi is not None else t
        out_buf = self.buffer(out_t)
        if not isinstance(t.body, Reduce):
            value = substitute(self.body_expr(t.body), env)
            nest: Stmt = Store(out_buf, tuple(axes), value)
        else:
            red = t.body
            acc = Buffer(self._unique(f"{t.name}.acc"), (1,), t.dtype, "local")
            rvars = [self.fresh_var(a) for a in red.axes]
            renv = {**env, **dict(zip(red.axes, rvars))}
            term = substitute(self.body_expr(red.body), renv)
            update: Stmt = Store(acc, (_zero(),), _combine(red.combiner, acc[0], term))
            for v, a in reversed(list(zip(rvars, red.axes))):
                update = For(v, a.extent, ForKind.SERIAL, update)
            result: Expr = acc[0]
            if epi is not None:
                assert epi.body is not None
                epi_env = dict(zip(epi.axes, axes))
                result = map_expr(
                    substitute(self.body_expr(epi.body), epi_env),
                    lambda x: acc[0] if isinstance(x, Load) and x.source is self.buffer(t)
                    else None,
                )
            nest = Allocate(acc, seq(Store(acc, (_zero(),), red.identity()), update,
                                     Store(out_buf, tuple(axes), result)))
        for v, n in reversed(list(zip(axes, t.shape))):
            nest = For(v, n, ForKind.SERIAL, nest)
        return nest


def _outer_loop_names(s: Stmt) -> list[str]:
    from deepc.ir.loop import Seq

    if isinstance(s, For):
        return [s.var.name]
    if isinstance(s, Allocate):
        return _outer_loop_names(s.body)
    if isinstance(s, Seq):
        return [n for x in s.stmts for n in _outer_loop_names(x)]
    return []


def _zero() -> Expr:
    from deepc.ir.expr import Const

    return Const(0, "int64")


def _combine(combiner: str, acc: Expr, term: Expr) -> Expr:
    op = {"sum": "add", "prod": "mul", "max": "max", "min": "min"}[combiner]
    if term.dtype == "bool" and op in ("add", "max"):
        op = "or"
    elif term.dtype == "bool":
        op = "and"
    return binary(op, acc, term)


def _same_point(indices: tuple[Expr, ...], axes: tuple[Var, ...], shape: tuple[int, ...]) -> bool:
    """Whether `indices` name the element at `axes`; broadcasting ops read an axis of extent
    1 at index 0, which is the same element."""
    from deepc.ir.expr import Const

    return len(indices) == len(axes) and all(
        i == a or (n == 1 and isinstance(i, Const) and i.value == 0)
        for i, a, n in zip(indices, axes, shape))


def _loads_of(e: Expr, t: Tensor) -> list[Load]:
    from deepc.ir.tensor import walk

    return [x for x in walk(e) if isinstance(x, Load) and x.source is t]


def lower(inputs: Sequence[Tensor], outputs: Sequence[Tensor], name: str) -> PrimFunc:
    """One function whose parameters are `inputs` then `outputs`, as buffers."""
    return _Lowering(inputs, outputs).run(name)


__all__ = ["lower", "tensors_read"]

"""Loop IR to LLVM IR: one LLVM function per PrimFunc, parallel loops outlined into tasks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llvmlite import ir

from deepc.backends.llvm.analysis import linear_offset, unsafe_select
from deepc.backends.llvm.convert import rounds_in_convert
from deepc.backends.llvm.exprs import FP_FLAGS, IN_ORDER_FP_FLAGS, ExprEmitter
from deepc.backends.llvm.types import I1, I32, I64, PTR, itemsize, memory_type
from deepc.ir.expr import AddressOf, Expr, Load, Select, Var
from deepc.ir.loop import (
    Allocate,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    walk_stmts,
)
from deepc.ir.tensor import IN_ORDER, walk

MAX_VECTOR_LANES = 64
MAX_UNROLL = 64
STACK_ALLOC_LIMIT = 64 * 1024  # bytes; larger scratch buffers come from malloc
TASK_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])


class FunctionEmitter(ExprEmitter):
    def __init__(self, module: ir.Module, func: ir.Function, name: str, *,
                 vars: dict[Var, ir.Value] | None = None,
                 buffers: dict[str, ir.Value] | None = None, in_parallel: bool = False,
                 byte_permutes: bool = False, rounds_in_convert: bool = False,
                 fp_flags: tuple[str, ...] = FP_FLAGS):
        self.module = module
        self.func = func
        self.name = name
        self.entry = func.append_basic_block("entry")
        self.builder = ir.IRBuilder(func.append_basic_block("body"))
        self.vars = dict(vars or {})
        self.buffers = dict(buffers or {})
        self.in_parallel = in_parallel
        self.byte_permutes = byte_permutes
        self.rounds_in_convert = rounds_in_convert
        self.fp_flags = fp_flags
        self.task_count = 0

    def finish(self) -> None:
        self.builder.ret_void()
        ir.IRBuilder(self.entry).branch(self.func.blocks[1])

    # -- statements ---------------------------------------------------------------------------
    def stmt(self, s: Stmt) -> None:
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, Store):
            self.store(s)
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, Allocate):
            self.allocate(s)
        elif isinstance(s, IfThenElse):
            self.branch(s)
        elif isinstance(s, Evaluate) and s.intrinsic == "prefetch":
            self.prefetch(s.args[0])
        elif isinstance(s, Evaluate):
            raise TypeError(f"intrinsic {s.intrinsic} has no CPU lowering")
        else:
            raise TypeError(f"cannot emit {type(s).__name__}")

    def store(self, s: Store) -> None:
        value = self.to_memory(self.emit(s.value), s.buffer.dtype)
        off_expr = linear_offset(s.buffer, s.indices)
        bld = self.builder
        if self.vec_var is not None and _mentions(off_expr, self.vec_var):
            value = self.broadcast(value, self.lanes)  # a uniform value stored per lane
        if isinstance(value.type, ir.VectorType):
            from deepc.backends.llvm.analysis import depends_on, lane_coefficient

            v = self.vec_var
            assert v is not None
            if depends_on(off_expr, v) and lane_coefficient(off_expr, v) == 1:
                base = self.emit_with_lane_zero(off_expr)
                bld.store(value, self.element_pointer(s.buffer, base),
                          align=itemsize(s.buffer.dtype))
                return
            offsets = self.emit(off_expr)
            if not isinstance(offsets.type, ir.VectorType):
                offsets = self.broadcast(offsets, value.type.count)
            for k in range(value.type.count):
                i = ir.Constant(I32, k)
                bld.store(bld.extract_element(value, i),
                          self.element_pointer(s.buffer, bld.extract_element(offsets, i)))
            return
        bld.store(value, self.element_pointer(s.buffer, self.emit(off_expr)))

    def prefetch(self, at: Expr) -> None:
        """A read prefetch of the line holding `at` (an AddressOf) into every cache level
        (locality 3): a hint that never faults, so an address past the buffer is harmless."""
        assert isinstance(at, AddressOf)
        ptr = self.element_pointer(at.source, self.emit(at.offset))
        fn = self.runtime_fn("llvm.prefetch.p0", ir.FunctionType(ir.VoidType(),
                                                                  [PTR, I32, I32, I32]))
        self.builder.call(fn, [ptr, ir.Constant(I32, 0), ir.Constant(I32, 3),
                               ir.Constant(I32, 1)])

    def loop(self, s: For) -> None:
        if s.extent <= 0:
            return
        kind = s.kind
        if kind is ForKind.VECTORIZED and self.vec_var is None and vectorizable(s):
            self.vector_loop(s)
            return
        if kind is ForKind.PARALLEL and not self.in_parallel and s.extent > 1:
            self.parallel_loop(s)
            return
        if (kind is ForKind.UNROLLED and s.extent <= MAX_UNROLL) or s.extent == 1:
            for k in range(s.extent):
                self.vars[s.var] = ir.Constant(I64, k)
                self.stmt(s.body)
            return
        self.serial_loop(s.var, ir.Constant(I64, 0), ir.Constant(I64, s.extent), s.body)

    def serial_loop(self, var: Var, begin: ir.Value, end: ir.Value, body: Stmt) -> None:
        bld = self.builder
        pre = bld.block
        head = bld.append_basic_block(f"{var.name}.head")
        loop_body = bld.append_basic_block(f"{var.name}.body")
        exit_bb = bld.append_basic_block(f"{var.name}.exit")
        bld.branch(head)
        bld.position_at_end(head)
        i = bld.phi(I64, name=var.name)
        i.add_incoming(begin, pre)
        bld.cbranch(bld.icmp_signed("<", i, end), loop_body, exit_bb)
        bld.position_at_end(loop_body)
        self.vars[var] = i
        self.stmt(body)
        nxt = bld.add(i, ir.Constant(I64, 1), flags=("nsw", "nuw"))
        i.add_incoming(nxt, bld.block)
        bld.branch(head)
        bld.position_at_end(exit_bb)

    def vector_loop(self, s: For) -> None:
        lanes = s.extent
        self.vec_var, self.lanes = s.var, lanes
        self.vars[s.var] = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
        try:
            self.stmt(s.body)
        finally:
            self.vec_var, self.lanes = None, 1

    def allocate(self, s: Allocate) -> None:
        buf = s.buffer
        ety = memory_type(buf.dtype)
        nbytes = buf.size * max(ety.width // 8 if isinstance(ety, ir.IntType) else 8, 1)
        if buf.scope == "local" or nbytes <= STACK_ALLOC_LIMIT:
            entry = ir.IRBuilder(self.entry)
            ptr = entry.alloca(ety, size=ir.Constant(I64, buf.size), name=buf.name)
            ptr.align = 64
            # an untyped pointer, so vector loads and stores may use it like a parameter
            # (llvmlite types allocas as typed pointers; the IR text is the same)
            ptr.type = PTR
            self.buffers[buf.name] = ptr
            self.stmt(s.body)
            return
        malloc = self.runtime_fn("malloc", ir.FunctionType(PTR, [I64]))
        free = self.runtime_fn("free", ir.FunctionType(ir.VoidType(), [PTR]))
        ptr = self.builder.call(malloc, [ir.Constant(I64, buf.size * _bytes(buf.dtype))])
        self.buffers[buf.name] = ptr
        self.stmt(s.body)
        self.builder.call(free, [ptr])

    def branch(self, s: IfThenElse) -> None:
        cond = self.emit(s.cond)
        if isinstance(cond.type, ir.VectorType):
            raise TypeError("condition varies across vector lanes")
        if s.otherwise is None:
            with self.builder.if_then(cond):
                self.stmt(s.then)
            return
        with self.builder.if_else(cond) as (then, otherwise):
            with then:
                self.stmt(s.then)
            with otherwise:
                self.stmt(s.otherwise)

    def _task_body(self, name: str, s: For, free_vars: list[Var], bufs: list[str]
                   ) -> ir.Function:
        """body(vars..., buffers..., begin, end): s's loop from begin to end."""
        fnty = ir.FunctionType(ir.VoidType(), [I64] * len(free_vars) + [PTR] * len(bufs)
                               + [I64, I64])
        body = ir.Function(self.module, fnty, f"{name}.body")
        body.linkage = "internal"
        body.attributes.add("alwaysinline")
        body.attributes.add("nounwind")
        inner = FunctionEmitter(self.module, body, name, in_parallel=True,
                                byte_permutes=self.byte_permutes,
                                rounds_in_convert=self.rounds_in_convert, fp_flags=self.fp_flags)
        params = body.args
        inner.vars.update(zip(free_vars, params))
        for b, param in zip(bufs, params[len(free_vars):]):
            outer = self.buffers[b]
            if isinstance(outer, ir.Argument) and "noalias" in outer.attributes:
                param.add_attribute("noalias")
            inner.buffers[b] = param
        inner.serial_loop(s.var, params[-2], params[-1], s.body)
        inner.finish()
        return body

    def runtime_fn(self, name: str, fnty: ir.FunctionType) -> ir.Function:
        if name in self.module.globals:
            return self.module.globals[name]
        return ir.Function(self.module, fnty, name)

    # -- parallel loops -----------------------------------------------------------------------
    def parallel_loop(self, s: For) -> None:
        """Outline the body into `task(ctx, begin, end)` and hand it to the thread pool.

        The task unpacks the context and calls the body as an always-inlined function whose
        buffer parameters keep the kernel's noalias: read from the context, the pointers
        would carry no aliasing facts and every store would reload loop-invariant values."""
        free_vars = sorted(free_variables(s.body, bound={s.var}), key=lambda v: v.name)
        free_vars = [v for v in free_vars if v in self.vars]
        bufs = sorted(buffers_used(s.body) & set(self.buffers))
        self.task_count += 1
        task = ir.Function(self.module, TASK_TYPE, f"{self.name}.task{self.task_count}")
        task.linkage = "internal"
        # the context is an array of 8-byte slots: loop variables, then buffer pointers
        slots = [self.vars[v] for v in free_vars] + [self.buffers[b] for b in bufs]
        bld = self.builder
        ctx = ir.IRBuilder(self.entry).alloca(I64, size=ir.Constant(I64, max(len(slots), 1)))
        for k, value in enumerate(slots):
            if k >= len(free_vars):
                value = bld.ptrtoint(value, I64)
            bld.store(value, bld.gep(ctx, [ir.Constant(I64, k)], source_etype=I64))
        body = self._task_body(task.name, s, free_vars, bufs)
        tb = ir.IRBuilder(task.append_basic_block("entry"))
        args = []
        for k in range(len(slots)):
            ptr = tb.gep(task.args[0], [ir.Constant(I64, k)], source_etype=I64)
            loaded = tb.load(ptr, typ=I64)
            args.append(loaded if k < len(free_vars) else tb.inttoptr(loaded, PTR))
        tb.call(body, [*args, task.args[1], task.args[2]])
        tb.ret_void()
        pfor = self.runtime_fn("deepc_parallel_for",
                               ir.FunctionType(ir.VoidType(), [PTR, PTR, I64]))
        bld.call(pfor, [task, ctx, ir.Constant(I64, s.extent)])


def _bytes(dtype: str) -> int:
    from deepc.backends.llvm.types import itemsize

    return itemsize(dtype)


def free_variables(s: Stmt, bound: set[Var]) -> set[Var]:
    used: set[Var] = set()
    for x in walk_stmts(s):
        if isinstance(x, For):
            bound = bound | {x.var}
        for e in stmt_exprs(x):
            used |= {n for n in walk(e) if isinstance(n, Var)}
    loop_vars = {x.var for x in walk_stmts(s) if isinstance(x, For)}
    return used - bound - loop_vars


def buffers_used(s: Stmt) -> set[str]:
    names: set[str] = set()
    for x in walk_stmts(s):
        if isinstance(x, Store):
            names.add(x.buffer.name)
        for e in stmt_exprs(x):
            names |= {n.source.name for n in walk(e) if isinstance(n, Load)}
    return names


def stmt_exprs(s: Stmt) -> list[Expr]:
    if isinstance(s, Store):
        return [*s.indices, s.value]
    if isinstance(s, IfThenElse):
        return [s.cond]
    if isinstance(s, Evaluate):
        return list(s.args)
    return []


def vectorizable(s: For) -> bool:
    """A vector loop's body: stores (and local allocations, uniform ifs) with no inner loops
    and no select that guards a load on some lanes only. A select whose test is the same
    on every lane (a concat choosing its input by an outer loop) branches instead."""
    if not 1 < s.extent <= MAX_VECTOR_LANES:
        return False
    for x in walk_stmts(s.body):
        if isinstance(x, For | Evaluate):
            return False
        if isinstance(x, IfThenElse) and _mentions(x.cond, s.var):
            return False
        for e in stmt_exprs(x):
            if any(isinstance(n, Select) and not _uniform(n.cond, s.var)
                   and unsafe_select(n)
                   for n in walk(e)):
                return False
    return True


def _uniform(e: Expr, v: Var) -> bool:
    """The same on every lane of the vector loop over `v`, and computed without loads."""
    return not _mentions(e, v) and not any(isinstance(n, Load) for n in walk(e))


def _mentions(e: Expr, v: Var) -> bool:
    return any(isinstance(n, Var) and n == v for n in walk(e))


def declare_kernel(module: ir.Module, f: PrimFunc, noalias: bool = True) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * len(f.params)), f.name)
    for arg, buf in zip(fn.args, f.params):
        arg.name = buf.name
        if noalias and not f.attrs.get("may_alias"):
            arg.add_attribute("noalias")
    fn.attributes.add("nounwind")
    return fn


def emit_kernel(module: ir.Module, f: PrimFunc, *, byte_permutes: bool = False,
                rounds_in_convert: bool = False) -> ir.Function:
    """f as an LLVM function; byte_permutes: the target has AVX-512 VBMI's vpermi2b;
    rounds_in_convert: its float -> int convert rounds to nearest even (convert.py)."""
    fn = declare_kernel(module, f)
    em = FunctionEmitter(module, fn, f.name,
                         buffers={b.name: a for b, a in zip(f.params, fn.args)},
                         byte_permutes=byte_permutes, rounds_in_convert=rounds_in_convert,
                         fp_flags=IN_ORDER_FP_FLAGS if f.attrs.get(IN_ORDER) else FP_FLAGS)
    em.stmt(f.body)
    em.finish()
    return fn


def emit_module(funcs: Iterable[PrimFunc], name: str = "deepc", triple: str = "") -> ir.Module:
    """The kernels of funcs, for `triple` where given (its conversions, convert.py)."""
    module = ir.Module(name=name)
    for f in funcs:
        emit_kernel(module, f, rounds_in_convert=rounds_in_convert(triple))
    return module


__all__ = ["I1", "Sequence", "emit_kernel", "emit_module"]

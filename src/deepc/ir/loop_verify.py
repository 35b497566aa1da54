"""Loop IR verifier: every variable bound before use, every buffer in scope, ranks and dtypes
consistent. Run after lowering and after each schedule."""

from __future__ import annotations

from deepc.errors import VerifyError
from deepc.ir.expr import AddressOf, Expr, FlatLoad, Load, Var, scalar_of
from deepc.ir.loop import (
    SCOPES,
    Allocate,
    Buffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    VectorStore,
)
from deepc.ir.tensor import Reduce, walk


def verify_func(f: PrimFunc) -> PrimFunc:
    names = [b.name for b in f.params]
    if len(set(names)) != len(names):
        raise VerifyError(f"{f.name}: parameter names repeat: {names}")
    _Checker(f.name).stmt(f.body, set(), {b.name: b for b in f.params})
    return f


class _Checker:
    def __init__(self, func: str):
        self.func = func

    def fail(self, message: str) -> VerifyError:
        return VerifyError(f"{self.func}: {message}")

    def expr(self, e: Expr, vars_: set[Var], bufs: dict[str, Buffer]) -> None:
        for node in walk(e):
            if isinstance(node, Reduce):
                raise self.fail("a reduction survived lowering")
            if isinstance(node, Var) and node not in vars_:
                raise self.fail(f"variable {node.name} is used outside its loop")
            if isinstance(node, Load):
                self.access(node.source, node.indices, bufs, "load from")
            if isinstance(node, FlatLoad | AddressOf):
                self.flat(node.source, node.offset, bufs, "address in")
                if isinstance(node, FlatLoad) and scalar_of(node.dtype) != scalar_of(
                        node.source.dtype) and node.source.scope not in ("shared", "local"):
                    raise self.fail(f"{node.source.name} reinterpreted as {node.dtype}")

    def flat(self, buf: object, offset: Expr, bufs: dict[str, Buffer], what: str) -> None:
        self.access(buf, (), bufs, what, rank=False)
        if offset.dtype != "int64":
            raise self.fail(f"offset into {getattr(buf, 'name', buf)} is {offset.dtype}")

    def access(self, buf: object, indices: tuple[Expr, ...], bufs: dict[str, Buffer],
               what: str, rank: bool = True) -> None:
        if not isinstance(buf, Buffer):
            raise self.fail(f"{what} a tensor, not a buffer: lowering left a stage behind")
        if bufs.get(buf.name) != buf:
            raise self.fail(f"{what} {buf.name}, which is not in scope")
        if rank and len(indices) != len(buf.shape):
            raise self.fail(f"{what} {buf.name} with {len(indices)} indices for rank "
                            f"{len(buf.shape)}")
        for i in indices:
            if i.dtype != "int64":
                raise self.fail(f"index of {buf.name} is {i.dtype}, not int64")

    def stmt(self, s: Stmt, vars_: set[Var], bufs: dict[str, Buffer]) -> None:
        if isinstance(s, For):
            if isinstance(s.extent, int) and s.extent < 0:
                raise self.fail(f"loop {s.var.name} has negative extent {s.extent}")
            for bound in (s.start, s.extent):
                if not isinstance(bound, int):
                    self.expr(bound, vars_, bufs)
            if s.step < 1:
                raise self.fail(f"loop {s.var.name} steps by {s.step}")
            if any(v.name == s.var.name for v in vars_):
                raise self.fail(f"loop variable {s.var.name} shadows an enclosing loop's")
            if s.kind in (ForKind.GPU_BLOCK, ForKind.GPU_THREAD) and s.thread_axis not in "xyz":
                raise self.fail(f"loop {s.var.name} is bound to GPU axis {s.thread_axis!r}")
            self.stmt(s.body, vars_ | {s.var}, bufs)
        elif isinstance(s, Store):
            self.access(s.buffer, s.indices, bufs, "store to")
            if s.value.dtype != s.buffer.dtype:
                raise self.fail(f"store of {s.value.dtype} into {s.buffer.dtype} buffer "
                                f"{s.buffer.name}")
            for e in (*s.indices, s.value):
                self.expr(e, vars_, bufs)
        elif isinstance(s, LetStmt):
            if any(v.name == s.var.name for v in vars_):
                raise self.fail(f"let {s.var.name} shadows an enclosing variable")
            if s.value.dtype != s.var.dtype:
                raise self.fail(f"let {s.var.name}: {s.var.dtype} bound to {s.value.dtype}")
            self.expr(s.value, vars_, bufs)
            self.stmt(s.body, vars_ | {s.var}, bufs)
        elif isinstance(s, VectorStore):
            self.flat(s.buffer, s.offset, bufs, "store to")
            if scalar_of(s.value.dtype) != s.buffer.dtype and s.buffer.scope != "shared":
                raise self.fail(f"vector store of {s.value.dtype} into {s.buffer.name}")
            self.expr(s.offset, vars_, bufs)
            self.expr(s.value, vars_, bufs)
        elif isinstance(s, Allocate):
            if (s.data is not None) != (s.buffer.scope == "constant") and not (
                    s.data is not None and s.buffer.scope == "global"):
                raise self.fail(f"table {s.buffer.name}: data needs a constant/global scope")
            if s.data is not None and len(s.data) != s.buffer.size:
                raise self.fail(f"table {s.buffer.name} holds {len(s.data)} values")
            if s.buffer.scope not in SCOPES:
                raise self.fail(f"buffer {s.buffer.name} has unknown scope {s.buffer.scope}")
            if s.buffer.name in bufs:
                raise self.fail(f"buffer {s.buffer.name} is allocated twice")
            self.stmt(s.body, vars_, {**bufs, s.buffer.name: s.buffer})
        elif isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x, vars_, bufs)
        elif isinstance(s, IfThenElse):
            if s.cond.dtype != "bool":
                raise self.fail("an if condition is not bool")
            self.expr(s.cond, vars_, bufs)
            self.stmt(s.then, vars_, bufs)
            if s.otherwise is not None:
                self.stmt(s.otherwise, vars_, bufs)
        elif isinstance(s, Evaluate):
            for a in s.args:
                self.expr(a, vars_, bufs)
        else:
            raise self.fail(f"unknown statement {type(s).__name__}")

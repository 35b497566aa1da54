"""Canonical text form of expressions and the loop IR."""

from __future__ import annotations

from deepc.ir.expr import (
    AddressOf,
    Binary,
    Call,
    Cast,
    Const,
    Expr,
    FlatLoad,
    Intrin,
    Lane,
    Load,
    Pack,
    Select,
    Unary,
    Var,
)
from deepc.ir.loop import (
    Allocate,
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
from deepc.ir.tensor import Reduce

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
          "lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "and": "&&",
          "or": "||", "bitand": "&", "bitor": "|", "bitxor": "^", "shl": "<<", "shr": ">>"}


def expr_to_text(e: Expr) -> str:
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Const):
        if e.dtype in ("int64", "bool"):
            return str(e.value).lower() if e.dtype == "bool" else str(e.value)
        return f"{e.value!r}:{e.dtype}"
    if isinstance(e, Binary):
        if e.op in _INFIX:
            return f"({expr_to_text(e.a)} {_INFIX[e.op]} {expr_to_text(e.b)})"
        return f"{e.op}({expr_to_text(e.a)}, {expr_to_text(e.b)})"
    if isinstance(e, Unary):
        return f"{ {'neg': '-', 'not': '!', 'bitnot': '~'}[e.op]}{expr_to_text(e.x)}"
    if isinstance(e, Cast):
        return f"{e.to}({expr_to_text(e.x)})"
    if isinstance(e, Call):
        return f"{e.func}({', '.join(expr_to_text(a) for a in e.args)})"
    if isinstance(e, Intrin):
        return f"@{e.name}({', '.join(expr_to_text(a) for a in e.args)})"
    if isinstance(e, FlatLoad):
        return f"{e.source.name}.flat[{expr_to_text(e.offset)}]:{e.dtype}"
    if isinstance(e, AddressOf):
        return f"&{e.source.name}.flat[{expr_to_text(e.offset)}]"
    if isinstance(e, Lane):
        return f"{expr_to_text(e.x)}.{e.index}"
    if isinstance(e, Pack):
        return f"{e.dtype}({', '.join(expr_to_text(a) for a in e.lanes)})"
    if isinstance(e, Select):
        return f"select({expr_to_text(e.cond)}, {expr_to_text(e.t)}, {expr_to_text(e.f)})"
    if isinstance(e, Load):
        return f"{e.source.name}[{', '.join(expr_to_text(i) for i in e.indices)}]"
    if isinstance(e, Reduce):
        axes = ", ".join(f"{a.name}<{a.extent}" for a in e.axes)
        return f"{e.combiner}({expr_to_text(e.body)} over {axes})"
    raise TypeError(type(e).__name__)


def stmt_to_text(s: Stmt, indent: int = 1) -> list[str]:
    pad = "  " * indent
    if isinstance(s, For):
        kind = "" if s.kind is ForKind.SERIAL else s.kind.value
        if s.thread_axis:
            kind += f".{s.thread_axis}"
        head = f"{pad}{kind} " if kind else pad
        def text(x: int | Expr) -> str:
            return str(x) if isinstance(x, int) else expr_to_text(x)
        step = f" step {s.step}" if s.step != 1 else ""
        return [f"{head}for {s.var.name} in {text(s.start)}..{text(s.extent)}{step} {{",
                *stmt_to_text(s.body, indent + 1),
                f"{pad}}}"]
    if isinstance(s, Store):
        idx = ", ".join(expr_to_text(i) for i in s.indices)
        return [f"{pad}{s.buffer.name}[{idx}] = {expr_to_text(s.value)}"]
    if isinstance(s, Allocate):
        b = s.buffer
        data = "" if s.data is None else f" = {{{', '.join(map(str, s.data))}}}"
        return [f"{pad}alloc {b.name}: {b.dtype}[{'x'.join(map(str, b.shape))}] {b.scope}{data}",
                *stmt_to_text(s.body, indent)]
    if isinstance(s, LetStmt):
        return [f"{pad}let {s.var.name}: {s.var.dtype} = {expr_to_text(s.value)}",
                *stmt_to_text(s.body, indent)]
    if isinstance(s, VectorStore):
        return [f"{pad}{s.buffer.name}.flat[{expr_to_text(s.offset)}] = {expr_to_text(s.value)}"]
    if isinstance(s, Seq):
        return [line for x in s.stmts for line in stmt_to_text(x, indent)]
    if isinstance(s, IfThenElse):
        lines = [f"{pad}if {expr_to_text(s.cond)} {{", *stmt_to_text(s.then, indent + 1)]
        if s.otherwise is not None:
            lines += [f"{pad}}} else {{", *stmt_to_text(s.otherwise, indent + 1)]
        return [*lines, f"{pad}}}"]
    if isinstance(s, Evaluate):
        return [f"{pad}{s.intrinsic}({', '.join(expr_to_text(a) for a in s.args)})"]
    raise TypeError(type(s).__name__)


def func_to_text(f: PrimFunc) -> str:
    params = ", ".join(f"{b.name}: {b.dtype}[{'x'.join(map(str, b.shape))}]" for b in f.params)
    bounds = f.attrs.get("launch_bounds")
    head = f"func {f.name}({params})" + (f" launch_bounds{tuple(bounds)}" if bounds else "")
    return "\n".join([f"{head} {{", *stmt_to_text(f.body), "}"])

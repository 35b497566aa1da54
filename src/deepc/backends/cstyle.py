"""Loop IR to C-like source text: one renderer, parameterised by a small dialect table.

CUDA C, OpenCL C, Metal, HLS C++ and plain C differ in qualifiers, thread indices, barriers,
type and math-function names; everything else (loops, loads, stores, expressions) is shared
here. Rendering is pure: no toolchain is needed to produce or test the text.
"""

from __future__ import annotations

import math

from deepc.backends.cstyle_dialect import Dialect
from deepc.backends.cstyle_tables import Tables
from deepc.ir.affine import flat_offset
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
    vector_lanes,
)
from deepc.ir.loop import (
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
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.ir.types import itemsize

_LANES = "xyzw"
_INFIX = {"add": "+", "sub": "-", "mul": "*", "lt": "<", "le": "<=", "eq": "==", "ne": "!=",
          "gt": ">", "ge": ">=", "and": "&&", "or": "||", "bitand": "&", "bitor": "|",
          "bitxor": "^", "shl": "<<", "shr": ">>"}
# float32 spelling of each math function; double drops the `f`
_MATH_F32 = {"exp": "expf", "log": "logf", "sqrt": "sqrtf", "tanh": "tanhf", "erf": "erff",
             "sin": "sinf", "cos": "cosf", "tan": "tanf", "asin": "asinf", "acos": "acosf",
             "atan": "atanf", "sinh": "sinhf", "cosh": "coshf", "asinh": "asinhf",
             "acosh": "acoshf", "atanh": "atanhf", "floor": "floorf", "ceil": "ceilf",
             "round": "rintf", "trunc": "truncf", "fabs": "fabsf", "exp2": "exp2f",
             "log2": "log2f", "pow": "powf", "fmod": "fmodf"}


class RenderError(Exception):
    """The loop IR holds something this renderer cannot express."""


def _non_negative(e: Expr) -> bool:
    if isinstance(e, Var):
        return True
    if isinstance(e, Const):
        return e.value >= 0
    if isinstance(e, Binary) and e.op in ("add", "mul", "floordiv", "mod", "min", "max"):
        return _non_negative(e.a) and _non_negative(e.b)
    return False


def _terms(e: Expr) -> list[Expr]:
    """The summands of an integer add chain."""
    if isinstance(e, Binary) and e.op == "add" and e.dtype == "int64":
        return _terms(e.a) + _terms(e.b)
    return [e]


class Renderer:
    """Renders expressions and statements of one function in one dialect."""

    def __init__(self, dialect: Dialect, index_type: str = "long long"):
        self.d = dialect
        self.index_type = index_type
        self.tables = Tables(dialect.constant_qualifier, dialect.table_qualifier,
                             dialect.constant_bytes)
        self._alias: dict[str, str] = {}  # a table buffer -> its module-level name
        self._serial: set[str] = set()  # variables of the enclosing serial loops
        self._func_attrs: dict = {}  # of the function being rendered

    def name(self, buf: Buffer) -> str:
        return self._alias.get(buf.name, buf.name)

    def vtype(self, dtype: str) -> str:
        """A variable's C type: int64 indices in the module's index type."""
        return self.index_type if dtype == "int64" else self.d.ctype(dtype)

    def template(self, key: str, table: dict[str, str], args: tuple[Expr, ...]) -> str:
        fmt = table.get(key)
        if fmt is None:
            raise RenderError(f"no {key} in dialect {self.d.name}")
        return fmt.format(*(self.expr(a) for a in args))

    # -- expressions ------------------------------------------------------------------------
    def expr(self, e: Expr) -> str:
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Const):
            return self.const(e)
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Unary):
            op = {"neg": "-", "not": "!", "bitnot": "~"}[e.op]
            return f"({op}{self.expr(e.x)})"
        if isinstance(e, Cast):
            if e.to == "bool":
                return f"({self.expr(e.x)} != 0)"
            return f"(({self.d.ctype(e.to)}){self.expr(e.x)})"
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.t)} : {self.expr(e.f)})"
        if isinstance(e, Load):
            return f"{self.name(e.source)}[{self.offset(e.source, e.indices)}]"
        if isinstance(e, Intrin):
            return self.template(e.name, self.d.intrinsics, e.args)
        if isinstance(e, FlatLoad):
            if vector_lanes(e.dtype) == 1 and e.dtype == e.source.dtype:
                return f"{self.name(e.source)}[{self.expr(e.offset)}]"
            return self.vector(self.d.vector_load, e.dtype, e.source, e.offset)
        if isinstance(e, AddressOf):
            return f"&{self.name(e.source)}[{self.expr(e.offset)}]"
        if isinstance(e, Lane):
            return f"{self.expr(e.x)}.{_LANES[e.index]}"
        if isinstance(e, Pack):
            if not self.d.pack:
                raise RenderError(f"no vector values in dialect {self.d.name}")
            return self.d.pack.format(type=self.d.ctype(e.dtype),
                                      lanes=", ".join(self.expr(x) for x in e.lanes))
        raise RenderError(f"cannot render expression {type(e).__name__}")

    def vector(self, fmt: str, dtype: str, buf: Buffer, offset: Expr, value: str = "") -> str:
        if not fmt:
            raise RenderError(f"no vector loads/stores in dialect {self.d.name}")
        if buf.scope == "global" and any(isinstance(x, Var) and x.name in self._serial
                                         for x in walk(offset)):
            # in a loop, pointer plus each term: the loop-invariant part of the address is
            # hoisted as one 64-bit pointer (an int index summed first cost ResNet-18's TF32
            # convs 12 registers a thread; outside loops the index form was the cheaper)
            addr = " + ".join([self.name(buf), *(self.expr(t) for t in _terms(offset))])
        else:
            addr = f"&{self.name(buf)}[{self.expr(offset)}]"
        return fmt.format(type=self.d.ctype(dtype), lanes=vector_lanes(dtype), addr=addr,
                          value=value, space=self.d.spaces.get(buf.scope, ""))

    def offset(self, buf: Buffer, indices: tuple[Expr, ...]) -> str:
        return self.expr(flat_offset(buf.shape, indices))

    def const(self, e: Const) -> str:
        v = e.value
        if e.dtype == "bool":
            return "true" if v else "false"
        if e.dtype in ("float32", "float64", "float16"):
            f = float(v)
            if math.isnan(f):
                text = self.d.nan
            elif math.isinf(f):
                text = self.d.inf if f > 0 else f"(-{self.d.inf})"
            else:
                text = repr(f) + ("" if e.dtype == "float64" else "f")
            return text if e.dtype != "float16" else f"(({self.d.ctype('float16')}){text})"
        iv = int(v)
        if -(2**31) <= iv < 2**31:
            return str(iv) if iv >= 0 else f"({iv})"
        return f"({iv}LL)" if e.dtype.startswith("int") else f"{iv}ULL"

    def binary(self, e: Binary) -> str:
        a, b, op, dt = self.expr(e.a), self.expr(e.b), e.op, e.a.dtype
        is_float = dt.startswith(("float", "bfloat"))
        if op in _INFIX:
            return f"({a} {_INFIX[op]} {b})"
        if op == "xor":
            return f"({a} != {b})"
        if op in ("min", "max"):
            if is_float:
                suffix = "d" if dt == "float64" else "f"
                return f"deepc_{op}{suffix}({a}, {b})"
            return f"(({self.d.ctype(dt)})deepc_{op}i({a}, {b}))"
        if is_float:
            if op == "div":
                return f"({a} / {b})"
            if op in ("fmod", "pow"):
                return f"{self.math(op, dt)}({a}, {b})"
            if op == "floordiv":
                return f"{self.math('floor', dt)}({a} / {b})"
            if op == "mod":
                return f"deepc_fmodpy({a}, {b})"
        else:
            nonneg = dt.startswith("uint") or (_non_negative(e.a) and _non_negative(e.b))
            if op == "div" or (op == "floordiv" and nonneg):
                return f"({a} / {b})"
            if op == "fmod" or (op == "mod" and nonneg):
                return f"({a} % {b})"
            if op in ("floordiv", "mod"):
                return f"(({self.d.ctype(dt)})deepc_{op}({a}, {b}))"
            if op == "pow":
                return f"(({self.d.ctype(dt)})pow((double){a}, (double){b}))"
        raise RenderError(f"cannot render {op} on {dt}")

    def math(self, func: str, dtype: str) -> str:
        if self.d.overloaded_math and func in _MATH_F32:
            return self.d.math.get(func) or _MATH_F32[func].removesuffix("f")
        name = self.d.math.get(func) or _MATH_F32.get(func)
        if name is None:
            raise RenderError(f"no math function {func}")
        return name[:-1] if dtype == "float64" and name.endswith("f") else name

    def call(self, e: Call) -> str:
        x = e.args[0]
        if x.dtype == "float16" and e.func not in ("isnan", "isinf"):
            wide = Call(e.func, tuple(Cast("float32", a) for a in e.args), "float32")
            return f"(({self.d.ctype('float16')}){self.call(wide)})"
        args = ", ".join(self.expr(a) for a in e.args)
        if e.func in ("isnan", "isinf"):
            return f"{e.func}({args})"
        if e.func == "rsqrt" and "rsqrt" not in self.d.math:
            one = "1.0" if x.dtype == "float64" else "1.0f"
            return f"({one} / {self.math('sqrt', x.dtype)}({args}))"
        return f"{self.math(e.func, x.dtype)}({args})"

    # -- statements -------------------------------------------------------------------------
    def stmt(self, s: Stmt, indent: int) -> list[str]:
        pad = "  " * indent
        if isinstance(s, For):
            return self.loop(s, indent)
        if isinstance(s, Store):
            return [f"{pad}{s.buffer.name}[{self.offset(s.buffer, s.indices)}] = "
                    f"{self.expr(s.value)};"]
        if isinstance(s, LetStmt):
            return self.lets(s, indent)
        if isinstance(s, VectorStore):
            return [pad + self.vector(self.d.vector_store, s.value.dtype, s.buffer, s.offset,
                                      self.expr(s.value)) + ";"]
        if isinstance(s, Allocate) and s.data is not None:
            ctype = self.d.ctype(s.buffer.dtype)
            self._alias[s.buffer.name] = self.tables.name(s.buffer, s.data, ctype)
            return self.stmt(s.body, indent)
        if isinstance(s, Allocate):
            b = s.buffer
            if b.scope == "global":
                raise RenderError(f"global buffer {b.name} allocated inside a kernel")
            if b.scope == "shared":  # declared at the kernel's top (see function)
                return self.stmt(s.body, indent)
            pragma = self.d.scope_pragmas.get(b.scope)
            return [f"{pad}{self.d.ctype(b.dtype)} {b.name}[{max(b.size, 1)}];",
                    *([pad + line for line in pragma.format(
                        name=b.name, size=b.size,
                        factor=self._func_attrs.get("partition", {}).get(b.name, 1),
                    ).splitlines()] if pragma else []),
                    *self.stmt(s.body, indent)]
        if isinstance(s, Seq):
            return [line for x in s.stmts for line in self.stmt(x, indent)]
        if isinstance(s, IfThenElse):
            lines = [f"{pad}if ({self.expr(s.cond)}) {{", *self.stmt(s.then, indent + 1)]
            if s.otherwise is not None:
                lines += [f"{pad}}} else {{", *self.stmt(s.otherwise, indent + 1)]
            return [*lines, f"{pad}}}"]
        if isinstance(s, Evaluate):
            if s.intrinsic == "barrier" and self.d.barrier:
                return [f"{pad}{self.d.barrier};"]
            return [f"{pad}{self.template(s.intrinsic, self.d.intrinsics, s.args)};"]
        raise RenderError(f"cannot render statement {type(s).__name__}")

    def lets(self, s: LetStmt, indent: int) -> list[str]:
        """A chain of lets as constants of one C block (sibling blocks may reuse names)."""
        pad, lines = "  " * indent, []
        body: Stmt = s
        while isinstance(body, LetStmt):
            lines.append(f"{pad}  const {self.vtype(body.var.dtype)} {body.var.name} = "
                         f"{self.expr(body.value)};")
            body = body.body
        return [f"{pad}{{", *lines, *self.stmt(body, indent + 1), f"{pad}}}"]

    def loop(self, s: For, indent: int) -> list[str]:
        pad, v = "  " * indent, s.var.name
        if s.kind in (ForKind.GPU_BLOCK, ForKind.GPU_THREAD):
            tag = f"{s.kind.value}.{s.thread_axis or 'x'}"
            index = self.d.thread_index.get(tag)
            if index is None:
                raise RenderError(f"dialect {self.d.name} has no {tag}")
            # the launch has exactly `extent` blocks/threads on this axis
            return [f"{pad}{{ const {self.index_type} {v} = {index};",
                    *self.stmt(s.body, indent + 1), f"{pad}}}"]
        fmt = self.d.loop_pragmas.get(s.kind.value)
        ii = self._func_attrs.get("pipeline_ii", {}).get(v, 1)
        head = [f"{pad}{'  ' if self.d.pragmas_in_body else ''}{line}"
                for line in fmt.format(extent=s.extent, ii=ii).splitlines()] if fmt else []
        if s.kind is ForKind.SERIAL:
            self._serial.add(v)
            body = self.stmt(s.body, indent + 1)
            self._serial.discard(v)
        else:
            body = self.stmt(s.body, indent + 1)
        start, extent = (x if isinstance(x, int) else self.expr(x) for x in (s.start, s.extent))
        step = f"++{v}" if s.step == 1 else f"{v} += {s.step}"
        line = f"{pad}for ({self.index_type} {v} = {start}; {v} < {extent}; {step}) {{"
        if self.d.pragmas_in_body:
            return [line, *head, *body, f"{pad}}}"]
        return [*head, line, *body, f"{pad}}}"]

    # -- functions --------------------------------------------------------------------------
    def restrict(self, f: PrimFunc) -> str:
        return "" if f.attrs.get("may_alias") or not self.d.restrict else f" {self.d.restrict}"

    def signature(self, f: PrimFunc, extra: tuple[Buffer, ...] = (),
                  writes: tuple[str, ...] = ()) -> str:
        """A kernel's head: its parameters are `f`'s buffers (then `extra`), as restrict pointers
        unless the function says its buffers may alias; those it stores to, or names in
        `writes` (stored by code rendered beside the IR), are not const."""
        restrict = self.restrict(f)
        gq = f"{self.d.global_qualifier} " if self.d.global_qualifier else ""
        written = {s.buffer.name for s in walk_stmts(f.body) if isinstance(s, Store)}
        written |= set(writes)
        # read-only inputs are `const`: lets GPU compilers use the read-only data path
        pointers = [f"{gq}{'' if b.name in written else 'const '}{self.d.ctype(b.dtype)}*"
                    f"{restrict} {b.name}{self.d.param_attr.format(index=k)}"
                    for k, b in enumerate((*f.params, *extra))]
        if self.d.arena_param:  # each pointer becomes a local set from the arena (`function`)
            pointers = [self.d.arena_param, *(f"ulong {b.name}_off" for b in (*f.params,
                                                                            *extra))]
        params = ", ".join([*pointers, *([self.d.builtin_params] if self.d.builtin_params
                                         else [])])
        qual = f"{self.d.kernel_qualifier} " if self.d.kernel_qualifier else ""
        bounds = f.attrs.get("launch_bounds")
        if bounds and self.d.launch_bounds:
            qual += self.d.launch_bounds.format(threads=bounds[0], blocks=bounds[1]) + " "
        return f"{qual}void {f.name}({params})"

    def function(self, f: PrimFunc, extra: tuple[Buffer, ...] = ()) -> str:
        """The kernel `f` (its buffers, then `extra`, are the parameters). Shared buffers
        are declared first, in the kernel's outermost scope (OpenCL requires it; they live
        as long as the block either way)."""
        shared: dict[str, Buffer] = {}
        for x in walk_stmts(f.body):
            if (isinstance(x, Allocate) and x.buffer.scope == "shared"
                    and shared.setdefault(x.buffer.name, x.buffer) != x.buffer):
                raise RenderError(f"{f.name}: two shared buffers named {x.buffer.name}")
        self._func_attrs = f.attrs
        decls = self.shared_decls(f, list(shared.values()))
        if self.d.arena_param:
            decls += ["  " + self.d.arena_offset.format(type=self.d.ctype(b.dtype), name=b.name,
                                                        restrict=self.restrict(f))
                      for b in (*f.params, *extra)]
        return "\n".join([f"{self.signature(f, extra)} {{", *decls, *self.stmt(f.body, 1),
                          "}"])


    def shared_decls(self, f: PrimFunc, shared: list[Buffer]) -> list[str]:
        """Each shared buffer as a static array, or (a kernel with "dynamic_shared" bytes)
        as a view into the launch's dynamic pool, in declaration order, 16-byte aligned."""
        if not (f.attrs.get("dynamic_shared") and self.d.dynamic_shared):
            return [f"  {self.d.shared_qualifier} {self.d.ctype(b.dtype)} {b.name}"
                    f"[{max(b.size, 1)}];" for b in shared]
        out, offset = [f"  {self.d.dynamic_shared}"], 0
        for b in shared:
            out.append("  " + self.d.shared_view.format(type=self.d.ctype(b.dtype),
                                                        name=b.name, offset=offset))
            offset += -(-b.size * itemsize(b.dtype) // 16) * 16
        return out


def index_type_for(funcs: list[PrimFunc], narrow: str = "int", wide: str = "long long") -> str:
    """32-bit index arithmetic when every buffer fits (it is much faster on GPUs)."""
    biggest = 0
    for f in funcs:
        biggest = max([biggest, *(b.size for b in f.params)])
        for s in walk_stmts(f.body):
            if isinstance(s, Allocate):
                biggest = max(biggest, s.buffer.size)
    return narrow if biggest < 2**31 else wide


__all__ = ["Dialect", "RenderError", "Renderer", "Tables", "index_type_for"]

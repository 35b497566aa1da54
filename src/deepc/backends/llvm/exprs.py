"""Expression emission for the LLVM backend, scalar or across the lanes of a vector loop.

In a vectorized loop the loop variable is the vector <0, 1, ..., n-1>; every other value
stays scalar until it meets a vector, where it is broadcast. Loads whose flat offset moves by
one element per lane become one vector load; loop-invariant loads stay scalar; anything else
is gathered lane by lane.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir

from deepc.backends.llvm import byte_table, fastmath
from deepc.backends.llvm.analysis import (
    depends_on,
    lane_coefficient,
    linear_offset,
    non_negative,
)
from deepc.backends.llvm.convert import emit_lrint, rounded_operand
from deepc.backends.llvm.dot import dot_term, emit_dot4
from deepc.backends.llvm.memory_values import MemoryValues
from deepc.backends.llvm.selects import SelectValues
from deepc.backends.llvm.types import (
    I1,
    I64,
    align,
    all_ones,
    constant,
    fbits,
    fconst,
    fone,
    fzero,
    ibits,
    is_float,
    is_signed,
    izero,
    memory_type,
    type_suffix,
    value_type,
)
from deepc.ir.expr import DOT_FUNCS, Binary, Call, Cast, Const, Expr, Load, Select, Unary, Var
from deepc.ir.loop import Buffer
from deepc.ir.types import NARROW_FLOATS, NARROW_INTS, register_dtype

# math functions LLVM has intrinsics for; the rest are libm calls
_INTRINSIC_MATH = {"exp", "log", "sqrt", "sin", "cos", "floor", "ceil", "trunc", "fabs",
                   "exp2", "log2"}
_LIBM = {"tanh", "erf", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"}
FP_FLAGS = ("contract", "reassoc")  # reassoc lets LLVM vectorize scalar sums
IN_ORDER_FP_FLAGS = ("contract",)  # an IN_ORDER kernel's: its sums keep their order


def _declare(module: ir.Module, name: str, ty: ir.Type, arity: int) -> ir.Function:
    """The module's function `name` of `arity` arguments of type `ty`, declared once."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ty, [ty] * arity), name)


class ExprEmitter(MemoryValues, SelectValues):
    builder: ir.IRBuilder
    module: ir.Module
    vars: dict[Var, ir.Value]
    buffers: dict[str, ir.Value]
    vec_var: Var | None = None
    lanes: int = 1
    byte_permutes: bool = False  # AVX-512 VBMI: 256-byte table reads permute (byte_table.py)
    rounds_in_convert: bool = False  # int32(round(x)) is one llvm.lrint (convert.py)
    shared: dict[Expr, ir.Value] = {}  # values a select's compare and sides share
    fp_flags: tuple[str, ...] = FP_FLAGS

    # -- helpers ------------------------------------------------------------------------------
    def broadcast(self, value: ir.Value, lanes: int) -> ir.Value:
        if isinstance(value.type, ir.VectorType):
            return value
        vty = ir.VectorType(value.type, lanes)
        one = self.builder.insert_element(ir.Constant(vty, ir.Undefined), value,
                                          ir.Constant(ir.IntType(32), 0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        return self.builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), mask)

    def unify(self, a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        va, vb = isinstance(a.type, ir.VectorType), isinstance(b.type, ir.VectorType)
        if va and not vb:
            b = self.broadcast(b, a.type.count)
        elif vb and not va:
            a = self.broadcast(a, b.type.count)
        return a, b

    def intrinsic(self, name: str, ty: ir.Type) -> ir.Function:
        return _declare(self.module, f"{name}.{type_suffix(ty)}", ty, 1)

    def intrinsic_n(self, name: str, ty: ir.Type, arity: int) -> ir.Function:
        return self.intrinsic(name, ty) if arity == 1 else self.intrinsic2(name, ty)

    def intrinsic2(self, name: str, ty: ir.Type) -> ir.Function:
        return _declare(self.module, f"{name}.{type_suffix(ty)}", ty, 2)

    def libm(self, name: str, ty: ir.Type) -> ir.Function:
        fname = {"float": f"{name}f", "double": name}.get(str(ty), f"{name}f")
        return _declare(self.module, fname, ty, 1)

    def per_lane(self, fn: Any, x: ir.Value) -> ir.Value:
        """Apply a scalar function to each lane of a vector."""
        if not isinstance(x.type, ir.VectorType):
            return fn(x)
        lanes = [fn(self.builder.extract_element(x, ir.Constant(ir.IntType(32), k)))
                 for k in range(x.type.count)]
        out = ir.Constant(ir.VectorType(lanes[0].type, len(lanes)), ir.Undefined)
        for k, lane in enumerate(lanes):
            out = self.builder.insert_element(out, lane, ir.Constant(ir.IntType(32), k))
        return out

    # -- expressions --------------------------------------------------------------------------
    def emit(self, e: Expr) -> ir.Value:
        if self.shared and e in self.shared:
            return self.shared[e]
        if isinstance(e, Var):
            return self.vars[e]
        if isinstance(e, Const):
            return constant(e.dtype, e.value)
        if isinstance(e, Binary):
            return self.emit_binary(e)
        if isinstance(e, Unary):
            return self.emit_unary(e)
        if isinstance(e, Cast):
            rounded = rounded_operand(e) if self.rounds_in_convert else None
            if rounded is not None:
                return emit_lrint(self.builder, self.emit(rounded))
            return self.emit_cast(self.emit(e.x), e.x.dtype, e.to)
        if isinstance(e, Call):
            return self.emit_call(e)
        if isinstance(e, Select):
            return self.emit_select(e)
        if isinstance(e, Load):
            return self.emit_load(e)
        raise TypeError(f"cannot emit {type(e).__name__}")

    def emit_binary(self, e: Binary) -> ir.Value:
        if e.op == "add" and (dot := dot_term(e)) is not None:
            return self.emit_dot(dot, e.b if dot is e.a else e.a)
        if e.dtype == "float32" and (s := fastmath.sigmoid_operand(e)) is not None:
            return fastmath.sigmoid_f32(self.builder, self.emit(s), self.intrinsic_n)
        a, b = self.unify(self.emit(e.a), self.emit(e.b))
        bld, dt, op = self.builder, e.a.dtype, e.op
        if is_float(dt):
            fl = self.fp_flags
            simple = {"add": bld.fadd, "sub": bld.fsub, "mul": bld.fmul, "div": bld.fdiv,
                      "fmod": bld.frem}
            if op in simple:
                return simple[op](a, b, flags=fl)
            if op in ("min", "max"):
                # compare + select (NaN propagates as numpy's maximum does); llvm.maxnum
                # reductions crash LLVM 22's loop vectorizer for some trip counts
                better = bld.fcmp_ordered(">" if op == "max" else "<", a, b)
                return bld.select(bld.or_(better, bld.fcmp_unordered("uno", a, a)), a, b)
            if op == "pow":
                return self.per_lane2(lambda x, y: bld.call(self.libm2("pow", x.type), [x, y]),
                                      a, b)
            if op in ("lt", "le", "eq", "ne", "gt", "ge"):
                cmp = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}[op]
                return (bld.fcmp_unordered(cmp, a, b) if op == "ne"
                        else bld.fcmp_ordered(cmp, a, b))
            if op == "floordiv":
                return bld.call(self.intrinsic("llvm.floor", a.type), [bld.fdiv(a, b)])
            if op == "mod":  # python-style: result has the divisor's sign
                r = bld.frem(a, b)
                fix = bld.and_(bld.fcmp_ordered("!=", r, fzero(r.type)),
                               bld.xor(bld.fcmp_ordered("<", r, fzero(r.type)),
                                       bld.fcmp_ordered("<", b, fzero(b.type))))
                return bld.select(fix, bld.fadd(r, b), r)
            raise TypeError(f"float op {op}")
        return self.emit_int_binary(e, a, b)

    def per_lane2(self, fn: Any, a: ir.Value, b: ir.Value) -> ir.Value:
        if not isinstance(a.type, ir.VectorType):
            return fn(a, b)
        out = ir.Constant(a.type, ir.Undefined)
        for k in range(a.type.count):
            i = ir.Constant(ir.IntType(32), k)
            lane = fn(self.builder.extract_element(a, i), self.builder.extract_element(b, i))
            out = self.builder.insert_element(out, lane, i)
        return out

    def libm2(self, name: str, ty: ir.Type) -> ir.Function:
        return _declare(self.module, f"{name}f" if str(ty) == "float" else name, ty, 2)

    def emit_int_binary(self, e: Binary, a: ir.Value, b: ir.Value) -> ir.Value:
        bld, dt, op = self.builder, e.a.dtype, e.op
        signed = is_signed(dt)
        nonneg = non_negative(e.a) and non_negative(e.b)
        if op == "add":
            return bld.add(a, b, flags=("nsw",) if dt == "int64" else ())
        if op == "sub":
            return bld.sub(a, b)
        if op == "mul":
            return bld.mul(a, b, flags=("nsw",) if dt == "int64" else ())
        if op in ("div", "floordiv", "mod", "fmod") and (not signed or nonneg):
            return (bld.urem if op in ("mod", "fmod") else bld.udiv)(a, b)
        if op == "div":
            return bld.sdiv(a, b)
        if op == "fmod":
            return bld.srem(a, b)
        if op in ("floordiv", "mod"):
            q, r = bld.sdiv(a, b), bld.srem(a, b)
            zero = ir.Constant(r.type, None) if not isinstance(r.type, ir.VectorType) else \
                ir.Constant(r.type, [0] * r.type.count)
            adjust = bld.and_(bld.icmp_signed("!=", r, zero),
                              bld.icmp_signed("<", bld.xor(r, b), zero))
            if op == "floordiv":
                return bld.sub(q, bld.zext(adjust, q.type))
            return bld.select(adjust, bld.add(r, b), r)
        if op in ("min", "max"):
            kind = ("s" if signed else "u") + op
            if dt == "bool":
                return bld.and_(a, b) if op == "min" else bld.or_(a, b)
            return bld.call(self.intrinsic2(f"llvm.{kind}", a.type), [a, b])
        if op in ("lt", "le", "eq", "ne", "gt", "ge"):
            cmp = {"lt": "<", "le": "<=", "eq": "==", "ne": "!=", "gt": ">", "ge": ">="}[op]
            return (bld.icmp_signed if signed else bld.icmp_unsigned)(cmp, a, b)
        if op in ("and", "bitand"):
            return bld.and_(a, b)
        if op in ("or", "bitor"):
            return bld.or_(a, b)
        if op in ("xor", "bitxor"):
            return bld.xor(a, b)
        if op == "shl":
            return bld.shl(a, b)
        if op == "shr":
            return bld.ashr(a, b) if signed else bld.lshr(a, b)
        if op == "pow":
            fa = self.emit_cast(a, dt, "float64")
            fb = self.emit_cast(b, dt, "float64")
            p = self.per_lane2(lambda x, y: bld.call(self.libm2("pow", x.type), [x, y]), fa, fb)
            return self.emit_cast(p, "float64", dt)
        raise TypeError(f"int op {op}")

    def emit_unary(self, e: Unary) -> ir.Value:
        x = self.emit(e.x)
        if e.op == "neg":
            return self.builder.fneg(x) if is_float(e.dtype) else self.builder.neg(x)
        ones = ir.Constant(x.type, None) if False else all_ones(x.type)
        return self.builder.xor(x, ones)

    def emit_dot(self, e: Call, acc: Expr | None) -> ir.Value:
        """acc + e for an int8 dot product: the accumulator goes into the instruction."""
        # the operands (wd: three) and the accumulator, scalars broadcast to the vectors' lanes
        vals = [self.emit(a) for a in e.args] + ([] if acc is None else [self.emit(acc)])
        lanes = max((v.type.count for v in vals if isinstance(v.type, ir.VectorType)), default=0)
        if lanes:
            vals = [v if isinstance(v.type, ir.VectorType) else self.broadcast(v, lanes)
                    for v in vals]
        total = izero(vals[0].type) if acc is None else vals.pop()
        return emit_dot4(self.builder, e.func, total, *vals)

    def emit_call(self, e: Call) -> ir.Value:
        if e.func == "bitcast":
            return self.bitcast(self.emit(e.args[0]), e.args[0].dtype, e.dtype)
        if e.func in DOT_FUNCS:
            return self.emit_dot(e, None)
        if e.args[0].dtype == "float16" and e.func not in ("isnan", "isinf"):
            # libm has no half-precision functions: compute in float32
            wide = Call(e.func, tuple(Cast("float32", a) for a in e.args), "float32")
            return self.emit_cast(self.emit(wide), "float32", "float16")
        args = [self.emit(a) for a in e.args]
        x = args[0]
        bld = self.builder
        if e.dtype == "float32" and e.func in ("exp", "tanh", "erf"):
            fn = {"exp": fastmath.exp_f32, "tanh": fastmath.tanh_f32,
                  "erf": fastmath.erf_f32}[e.func]
            return fn(bld, x, self.intrinsic_n)
        if e.func in _INTRINSIC_MATH:
            name = "llvm.fabs" if e.func == "fabs" else f"llvm.{e.func}"
            return bld.call(self.intrinsic(name, x.type), [x])
        if e.func == "round":
            return bld.call(self.intrinsic("llvm.roundeven", x.type), [x])
        if e.func == "rsqrt":
            s = bld.call(self.intrinsic("llvm.sqrt", x.type), [x])
            return bld.fdiv(fone(x.type), s)
        if e.func == "isnan":
            return bld.fcmp_unordered("uno", x, x)
        if e.func == "isinf":
            a = bld.call(self.intrinsic("llvm.fabs", x.type), [x])
            return bld.fcmp_ordered("==", a, fconst(x.type, float("inf")))
        if e.func in _LIBM:
            return self.per_lane(lambda lane: bld.call(self.libm(e.func, lane.type), [lane]), x)
        raise TypeError(f"no lowering for math function {e.func}")

    def emit_cast(self, x: ir.Value, src: str, dst: str) -> ir.Value:
        if src == dst:
            return x
        if dst in NARROW_FLOATS:  # round in registers: what a store would keep
            wide = self.emit_cast(x, src, "float32")
            return self.decode(self.encode(wide, dst), dst)
        if dst in NARROW_INTS:
            return self.narrow_int(x, register_dtype(src), dst)
        if src != register_dtype(src):
            return self.emit_cast(x, register_dtype(src), dst)
        bld = self.builder
        lanes = x.type.count if isinstance(x.type, ir.VectorType) else 0
        to = value_type(dst)
        to = ir.VectorType(to, lanes) if lanes else to
        if dst == "bool":
            if is_float(src):
                return bld.fcmp_unordered("!=", x, fzero(x.type))
            return bld.icmp_unsigned("!=", x, izero(x.type))
        if is_float(src) and is_float(dst):
            if (src, dst) == ("float64", "float16"):
                # no double->half instruction on x86: LLVM would call a compiler-rt helper
                # that a JIT cannot resolve; go through float32 (rare 1-ulp double rounding)
                return self.emit_cast(self.emit_cast(x, src, "float32"), "float32", dst)
            return bld.fpext(x, to) if fbits(src) < fbits(dst) else bld.fptrunc(x, to)
        if is_float(dst):
            return bld.sitofp(x, to) if is_signed(src) else bld.uitofp(x, to)
        if is_float(src):
            return bld.fptosi(x, to) if is_signed(dst) else bld.fptoui(x, to)
        sw, dw = ibits(src), ibits(dst)
        if sw == dw:
            return x
        if sw > dw:
            return bld.trunc(x, to)
        return bld.sext(x, to) if is_signed(src) else bld.zext(x, to)

    def element_pointer(self, buf: Buffer, offset: ir.Value) -> ir.Value:
        return self.builder.gep(self.buffers[buf.name], [offset],
                                source_etype=memory_type(buf.dtype))

    def emit_load(self, e: Load) -> ir.Value:
        buf: Buffer = e.source
        off_expr = linear_offset(buf, e.indices)
        bld = self.builder
        v = self.vec_var
        coef = None if v is None or not depends_on(off_expr, v) else lane_coefficient(off_expr, v)
        if v is not None and depends_on(off_expr, v):
            if coef == 1:
                base = self.emit_with_lane_zero(off_expr)
                ptr = self.element_pointer(buf, base)
                vty = ir.VectorType(memory_type(buf.dtype), self.lanes)
                # element alignment only: vector loads start anywhere in a buffer
                val = bld.load(ptr, typ=vty, align=align(buf.dtype))
                return self.from_memory(val, buf.dtype)
            offsets = self.emit(off_expr)
            if self.byte_permutes and byte_table.is_byte_table(buf.size, buf.dtype):
                return byte_table.lookup(bld, self.buffers[buf.name], offsets)
            return self.per_lane(lambda o: self.from_memory(
                bld.load(self.element_pointer(buf, o), typ=memory_type(buf.dtype)), buf.dtype),
                offsets) if buf.dtype != "bool" else self.gather_bool(buf, offsets)
        ptr = self.element_pointer(buf, self.emit(off_expr))
        return self.from_memory(bld.load(ptr, typ=memory_type(buf.dtype)), buf.dtype)

    def gather_bool(self, buf: Buffer, offsets: ir.Value) -> ir.Value:
        bld = self.builder
        out = ir.Constant(ir.VectorType(I1, offsets.type.count), ir.Undefined)
        for k in range(offsets.type.count):
            i = ir.Constant(ir.IntType(32), k)
            o = bld.extract_element(offsets, i)
            byte = bld.load(self.element_pointer(buf, o), typ=memory_type("bool"))
            out = bld.insert_element(out, bld.trunc(byte, I1), i)
        return out

    def emit_with_lane_zero(self, e: Expr) -> ir.Value:
        saved = self.vec_var
        assert saved is not None
        old = self.vars[saved]
        self.vars[saved] = ir.Constant(I64, 0)
        self.vec_var = None
        try:
            return self.emit(e)
        finally:
            self.vars[saved] = old
            self.vec_var = saved

"""int32(round(x)) of float32 -> one rounding conversion (llvm.lrint) where the target's
float -> int convert rounds to nearest even, as round does under the default rounding mode.

x86's cvtps2dq does (one instruction for roundps + cvttps2dq); AArch64 lowers lrint to
frintx + fcvtzs, no dearer than frintn + fcvtzs. 32-bit ARM and WebAssembly would call
lrintf per lane, so they keep roundeven and a truncating convert.
"""

from __future__ import annotations

from llvmlite import ir

from deepc.ir.expr import Call, Cast, Expr

_ROUNDING_CONVERTS = ("x86_64", "i386", "i486", "i586", "i686", "aarch64", "arm64")


def rounds_in_convert(triple: str) -> bool:
    """Whether LLVM lowers llvm.lrint of float32 vectors for `triple` to conversions (no
    libcall)."""
    return triple.split("-", 1)[0] in _ROUNDING_CONVERTS


def rounded_operand(e: Cast) -> Expr | None:
    """x where e is int32(round(x)) of a float32 x, else None."""
    x = e.x
    if e.to == "int32" and isinstance(x, Call) and x.func == "round" and x.dtype == "float32":
        return x.args[0]
    return None


def emit_lrint(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """int32 lanes of x (float32 or a float32 vector) rounded in the current mode."""
    vec = isinstance(x.type, ir.VectorType)
    to = ir.VectorType(ir.IntType(32), x.type.count) if vec else ir.IntType(32)
    suffix = f"v{x.type.count}i32.v{x.type.count}f32" if vec else "i32.f32"
    name = f"llvm.lrint.{suffix}"
    fn = b.module.globals.get(name) or ir.Function(b.module, ir.FunctionType(to, [x.type]), name)
    return b.call(fn, [x])

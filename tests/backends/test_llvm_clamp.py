"""Selects that clamp a loaded value (the int8 epilogues' saturated_round) run branch-free,
one maxps and one minps; selects that guard a load still branch."""

from __future__ import annotations

from deepc.backends.llvm.analysis import unsafe_select
from deepc.ir.expr import INDEX, Call, Cast, Load, Select, Var, binary, const
from deepc.ir.loop import Buffer, For, ForKind, PrimFunc, Store

X = Buffer("x", (64,), "float32")
I = Var("i", INDEX)


def _clamp(y):  # type: ignore[no-untyped-def]
    lo, hi = const(-128.0, "float32"), const(127.0, "float32")
    above = Select(binary("gt", y, lo), y, lo)
    return Select(binary("lt", above, hi), above, hi)


def test_a_side_the_condition_computes_is_safe_to_speculate() -> None:
    y = Load(X, (I,))
    assert not unsafe_select(_clamp(y))
    guard = binary("lt", I, const(10, INDEX))
    assert unsafe_select(Select(guard, y, const(0.0, "float32")))
    # computed only under another select's guard in the condition: still unsafe
    nested = Select(guard, y, const(0.0, "float32"))
    assert unsafe_select(Select(binary("gt", nested, const(0.0, "float32")), y,
                                const(0.0, "float32")))


def test_clamp_of_a_load_is_maxps_minps() -> None:
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import MachineSpec, emit_assembly, optimize

    y = Buffer("y", (64,), "int32")
    value = Cast("int32", Call("round", (_clamp(Load(X, (I,))),), "float32"))
    func = PrimFunc("c", (X, y), For(I, 64, ForKind.VECTORIZED, Store(y, (I,), value)))
    triple = "x86_64-unknown-linux-gnu"
    spec = MachineSpec(triple, "haswell", "+avx,+avx2,+fma")
    asm = emit_assembly(optimize(emit_module([func], triple=triple), spec), spec)
    assert "vmaxps" in asm and "vminps" in asm and "vcvtps2dq" in asm
    assert "vblendvps" not in asm and "vcmpunordps" not in asm

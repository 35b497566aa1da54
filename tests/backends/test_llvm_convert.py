"""int32(round(x)) as one rounding conversion where the target's convert rounds to nearest
even (backends/llvm/convert.py), and the old roundeven + truncation elsewhere."""

from __future__ import annotations

import pytest

from deepc.backends.llvm.convert import rounds_in_convert
from deepc.ir.expr import INDEX, Call, Cast, Load, Var
from deepc.ir.loop import Buffer, For, ForKind, PrimFunc, Store


def _asm(triple: str, cpu: str, features: str) -> str:
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import MachineSpec, emit_assembly, optimize

    x, y = Buffer("x", (64,), "float32"), Buffer("y", (64,), "int32")
    i = Var("i", INDEX)
    body = For(i, 64, ForKind.VECTORIZED,
               Store(y, (i,), Cast("int32", Call("round", (Load(x, (i,)),), "float32"))))
    spec = MachineSpec(triple, cpu, features)
    return emit_assembly(optimize(emit_module([PrimFunc("r", (x, y), body)], triple=triple),
                                  spec), spec)


def test_x86_rounds_in_one_conversion() -> None:
    asm = _asm("x86_64-unknown-linux-gnu", "haswell", "+avx,+avx2,+fma")
    assert "vcvtps2dq" in asm and "vroundps" not in asm and "vcvttps2dq" not in asm


@pytest.mark.parametrize(("triple", "expected"), [
    ("x86_64-unknown-linux-gnu", True), ("aarch64-unknown-linux-gnu", True),
    ("armv7-unknown-linux-gnueabihf", False), ("wasm32-unknown-unknown", False)])
def test_only_targets_without_a_libcall_use_lrint(triple: str, expected: bool) -> None:
    assert rounds_in_convert(triple) is expected

"""Vectorized lookups in a 256-byte table: vpermi2b where the target has AVX-512 VBMI, the
same bytes as the per-lane loads elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.expr import INDEX, Load, Var, binary
from deepc.ir.loop import Buffer, For, ForKind, PrimFunc, Store

VBMI = "+avx512f,+avx512bw,+avx512vl,+avx512vbmi"
rng = np.random.default_rng(24)


def _lookup_func(n: int, lanes: int, x_dtype: str, t_dtype: str) -> PrimFunc:
    """y[i] = table[x[i] - min(x's dtype)], the inner loop `lanes` wide (n a multiple)."""
    x, table, y = Buffer("x", (n,), x_dtype), Buffer("t", (256,), t_dtype), \
        Buffer("y", (n,), t_dtype)
    o, v = Var("o", INDEX), Var("v", INDEX)
    i = binary("add", binary("mul", o, lanes), v)
    idx = Load(x, (i,)).astype(INDEX)
    if x_dtype == "int8":
        idx = binary("add", idx, 128)
    body = For(o, n // lanes, ForKind.SERIAL,
               For(v, lanes, ForKind.VECTORIZED, Store(y, (i,), Load(table, (idx,)))))
    return PrimFunc("lookup", (x, table, y), body)


def _module(func: PrimFunc, permutes: bool):  # type: ignore[no-untyped-def]
    from llvmlite import ir

    from deepc.backends.llvm.codegen import emit_kernel

    module = ir.Module(name="t")
    emit_kernel(module, func, byte_permutes=permutes)
    return module


@pytest.mark.parametrize("lanes", [16, 64])
def test_byte_table_lookups_are_byte_permutes_with_vbmi(lanes: int) -> None:
    from deepc.backends.llvm.machine import MachineSpec, emit_assembly, optimize

    spec = MachineSpec("x86_64-unknown-linux-gnu", "x86-64", VBMI)
    func = _lookup_func(256, lanes, "uint8", "uint8")
    with_permutes = emit_assembly(optimize(_module(func, True), spec), spec)
    without = emit_assembly(optimize(_module(func, False), spec), spec)
    assert "vpermi2b" in with_permutes or "vpermt2b" in with_permutes
    assert "vpermi2b" not in without and "vpermt2b" not in without


def _host_has_vbmi() -> bool:
    from deepc.backends.llvm.machine import MachineSpec

    return "+avx512vbmi" in MachineSpec.host().features.split(",")


@pytest.mark.parametrize("lanes", [8, 32, 64])
@pytest.mark.parametrize(("x_dtype", "t_dtype"), [("uint8", "uint8"), ("int8", "int8"),
                                                   ("int8", "uint8")])
def test_byte_table_lookups_read_each_byte_s_entry(lanes: int, x_dtype: str,
                                                   t_dtype: str) -> None:
    """Permutes where this CPU has VBMI (the per-lane loads otherwise): every index, twice."""
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize

    func = _lookup_func(512, lanes, x_dtype, t_dtype)
    jit = JitModule(optimize(_module(func, _host_has_vbmi()), MachineSpec.host()))
    x = rng.permutation(np.tile(np.arange(256), 2)).astype(np.uint8).view(x_dtype)
    table = rng.integers(0, 256, 256).astype(np.uint8).view(t_dtype)
    y = np.zeros(512, t_dtype)
    jit.kernel("lookup", 3)(x.ctypes.data, table.ctypes.data, y.ctypes.data)
    offset = 128 if x_dtype == "int8" else 0
    np.testing.assert_array_equal(y, table[x.astype(np.int64) + offset])

"""Vector int8 dot products of words (backends/llvm/dot.py): AVX2's vpmaddubsw and vpmaddwd
give the exact sums where the pass allows them, and are the instructions emitted."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.expr import INDEX, Call, Load, Var, binary
from deepc.ir.loop import Buffer, For, ForKind, PrimFunc, Store
from deepc.ir.tensor_eval import dot4
from deepc.ops.qdot import widen_pairs
from deepc.target import load_target

rng = np.random.default_rng(7)
HAS_MADD = "avx2_madd" in load_target("host").dot_intrinsics
N = 96


def _dot_func(kind: str, lanes: int) -> PrimFunc:
    """y[i] += dot4.<kind>(u[i], s[i]), the inner loop `lanes` wide."""
    u, s, y = (Buffer(name, (N,), "int32") for name in ("u", "s", "y"))
    o, v = Var("o", INDEX), Var("v", INDEX)
    i = binary("add", binary("mul", o, lanes), v)
    dot = Call(f"dot4.{kind}", (Load(u, (i,)), Load(s, (i,))), "int32")
    body = For(o, N // lanes, ForKind.SERIAL,
               For(v, lanes, ForKind.VECTORIZED, Store(y, (i,), binary("add", Load(y, (i,)), dot))))
    return PrimFunc("dot", (u, s, y), body)


def _wd_func(lanes: int) -> PrimFunc:
    """y[i] += dot4.wd(u[i], s[2i], s[2i + 1]): the signed words as their int16 pairs."""
    u, y, s = Buffer("u", (N,), "int32"), Buffer("y", (N,), "int32"), Buffer("s", (2 * N,), "int32")
    o, v = Var("o", INDEX), Var("v", INDEX)
    i = binary("add", binary("mul", o, lanes), v)
    pair = (Load(s, (binary("mul", i, 2),)), Load(s, (binary("add", binary("mul", i, 2), 1),)))
    dot = Call("dot4.wd", (Load(u, (i,)), *pair), "int32")
    body = For(o, N // lanes, ForKind.SERIAL,
               For(v, lanes, ForKind.VECTORIZED, Store(y, (i,), binary("add", Load(y, (i,)), dot))))
    return PrimFunc("dot", (u, s, y), body)


def _module(func: PrimFunc):  # type: ignore[no-untyped-def]
    from llvmlite import ir

    from deepc.backends.llvm.codegen import emit_kernel

    module = ir.Module(name="t")
    emit_kernel(module, func)
    return module


@pytest.mark.parametrize(("kind", "instruction"), [("maddubs", "vpmaddubsw"),
                                                   ("maddwd", "vpmaddwd")])
def test_madd_kinds_emit_their_instruction(kind: str, instruction: str) -> None:
    from deepc.backends.llvm.machine import MachineSpec, emit_assembly, optimize

    spec = MachineSpec("x86_64-unknown-linux-gnu", "haswell", "+avx,+avx2,+fma")
    asm = emit_assembly(optimize(_module(_dot_func(kind, 8)), spec), spec)
    assert instruction in asm
    assert ("vpmaddubsw" in asm) == (kind == "maddubs")  # maddwd never saturates pairs


@pytest.mark.skipif(not HAS_MADD, reason="the host has no AVX2")
@pytest.mark.parametrize("lanes", [4, 8, 16])
@pytest.mark.parametrize("kind", ["maddubs", "maddwd"])
def test_madd_sums_are_exact(kind: str, lanes: int) -> None:
    """maddubs on bytes whose pairs fit (|s0| + |s1| <= 128, the extremes in), maddwd on any
    bytes: both equal the exact int32 dot products."""
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize

    lo, hi = (-64, 64) if kind == "maddubs" else (-128, 127)
    u8 = rng.integers(0, 256, (N, 4)).astype(np.uint8)
    s8 = rng.integers(lo, hi + 1, (N, 4)).astype(np.int8)
    u8[:2], s8[0], s8[1] = 255, lo, hi  # the largest pair sums either way
    u, s = u8.view("<i4")[:, 0].copy(), s8.view("<i4")[:, 0].copy()
    y = rng.integers(-1000, 1000, N).astype(np.int32)
    want = y + dot4(u, s)
    jit = JitModule(optimize(_module(_dot_func(kind, lanes)), MachineSpec.host()))
    jit.kernel("dot", 3)(u.ctypes.data, s.ctypes.data, y.ctypes.data)
    np.testing.assert_array_equal(y, want)


def test_wd_widens_no_weights() -> None:
    """dot4.wd reads its weights as vpmaddwd's operands: no arithmetic shift (the sign
    extension of a weight byte) in the kernel."""
    from deepc.backends.llvm.machine import MachineSpec, emit_assembly, optimize

    spec = MachineSpec("x86_64-unknown-linux-gnu", "haswell", "+avx,+avx2,+fma")
    asm = emit_assembly(optimize(_module(_wd_func(8)), spec), spec)
    assert "vpmaddwd" in asm and "vpsraw" not in asm and "vpmaddubsw" not in asm


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_wd_sums_are_exact(lanes: int) -> None:
    """Any bytes (the extremes in): the exact dot products; a lane count no multiple of 4
    narrows the pairs back to words (any host)."""
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize

    if lanes % 4 == 0 and not HAS_MADD:
        pytest.skip("the host has no AVX2")
    u8 = rng.integers(0, 256, (N, 4)).astype(np.uint8)
    s8 = rng.integers(-128, 128, (N, 4)).astype(np.int8)
    u8[:2], s8[0], s8[1] = 255, -128, 127
    u, s = u8.view("<i4")[:, 0].copy(), s8.view("<i4")[:, 0].copy()
    y = rng.integers(-1000, 1000, N).astype(np.int32)
    want = y + dot4(u, s)
    pairs = widen_pairs(s, 0)
    jit = JitModule(optimize(_module(_wd_func(lanes)), MachineSpec.host()))
    jit.kernel("dot", 3)(u.ctypes.data, pairs.ctypes.data, y.ctypes.data)
    np.testing.assert_array_equal(y, want)

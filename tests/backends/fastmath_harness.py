"""JIT one fastmath expansion over a float32 array, a vector of `lanes` at a time."""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
from llvmlite import ir

from deepc.backends.llvm.exprs import ExprEmitter
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize

Expansion = Callable[..., ir.Value]


def jit_map(expansion: Expansion, lanes: int) -> Callable[[np.ndarray], np.ndarray]:
    """out[i] = expansion(x[i]) for a float32 array whose size is a multiple of lanes."""
    f32, i64 = ir.FloatType(), ir.IntType(64)
    vty = ir.VectorType(f32, lanes) if lanes > 1 else f32
    module = ir.Module("fastmath_test")
    ptr = ir.PointerType()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr, ptr, i64]), "kernel")
    entry, body, done = (fn.append_basic_block(n) for n in ("entry", "body", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", fn.args[2], ir.Constant(i64, 0)), body, done)
    b.position_at_end(body)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    x = b.load(b.gep(fn.args[0], [i], source_etype=f32), typ=vty, align=4)
    emitter = ExprEmitter()
    emitter.builder, emitter.module = b, module
    y = expansion(b, x, emitter.intrinsic_n)
    b.store(y, b.gep(fn.args[1], [i], source_etype=f32), align=4)
    nxt = b.add(i, ir.Constant(i64, lanes))
    i.add_incoming(nxt, body)
    b.cbranch(b.icmp_signed("<", nxt, fn.args[2]), body, done)
    b.position_at_end(done)
    b.ret_void()
    jit = JitModule(optimize(module, MachineSpec.host()))
    proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
    kernel = proto(jit.address("kernel"))

    def run(xs: np.ndarray) -> np.ndarray:
        xs = np.ascontiguousarray(xs, dtype=np.float32)
        assert xs.size % lanes == 0
        out = np.empty_like(xs)
        kernel(xs.ctypes.data, out.ctypes.data, xs.size)
        return out

    run.jit = jit  # type: ignore[attr-defined]
    return run


def ulp_error(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|y - ref| in units of the float32 spacing at ref (ref in float64; subnormal spacing
    at the bottom of the range)."""
    r32 = ref.astype(np.float32)
    spacing = np.spacing(np.abs(r32)).astype(np.float64)
    return np.abs(y.astype(np.float64) - ref) / spacing


def sweep(lo: float, hi: float, n: int = 1 << 20) -> np.ndarray:
    """n float32 values spread over [lo, hi], plus every power-of-two neighbourhood near 0."""
    return np.linspace(lo, hi, n).astype(np.float32)

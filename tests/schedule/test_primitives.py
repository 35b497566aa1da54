"""Each schedule primitive preserves results: random shapes, compiled and run by the JIT."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepc.backends.llvm.codegen import emit_module
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
from deepc.ir.expr import maximum
from deepc.ir.loop import PrimFunc
from deepc.ir.loop_text import func_to_text
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder, reduce_axis, rsum
from deepc.schedule import Schedule, fuse, reorder, split, tile, unroll, vectorize

SETTINGS = settings(max_examples=12, deadline=None)


def matmul_relu(n: int, m: int, k: int) -> PrimFunc:
    a = placeholder((n, k), "float32", "A")
    b = placeholder((k, m), "float32", "B")
    r = reduce_axis(k, "r")
    c = compute((n, m), lambda i, j: rsum(a[i, r] * b[r, j], r), "C")
    d = compute((n, m), lambda i, j: maximum(c[i, j], 0.0), "D")
    return lower([a, b], [d], "mm")


def elementwise(n: int, m: int) -> PrimFunc:
    a = placeholder((n, m), "float32", "A")
    b = placeholder((m,), "float32", "B")
    d = compute((n, m), lambda i, j: a[i, j] * 2.0 + b[j], "D")
    return lower([a, b], [d], "ew")


def run(f: PrimFunc, *arrays: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    jit = JitModule(optimize(emit_module([f]), MachineSpec.host()))
    out = np.zeros(out_shape, np.float32)
    jit.kernel(f.name, len(arrays) + 1)(*[a.ctypes.data for a in (*arrays, out)])
    return out


def mm_inputs(n: int, m: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n * 100 + m * 10 + k)
    return (rng.standard_normal((n, k)).astype(np.float32),
            rng.standard_normal((k, m)).astype(np.float32))


def check_mm(f: PrimFunc, n: int, m: int, k: int) -> None:
    a, b = mm_inputs(n, m, k)
    np.testing.assert_allclose(run(f, a, b, out_shape=(n, m)), np.maximum(a @ b, 0),
                               rtol=1e-4, atol=1e-4)


dims = st.integers(1, 19)


@SETTINGS
@given(n=dims, m=dims, k=dims, factor=st.integers(1, 8))
def test_split_preserves_results(n: int, m: int, k: int, factor: int) -> None:
    f = matmul_relu(n, m, k)
    check_mm(split(split(f, "C_i1", factor), "r", factor), n, m, k)


@SETTINGS
@given(n=dims, m=dims, k=dims)
def test_fuse_and_reorder_preserve_results(n: int, m: int, k: int) -> None:
    f = matmul_relu(n, m, k)
    check_mm(fuse(f, "C_i0", "C_i1"), n, m, k)
    check_mm(reorder(f, "C_i1", "C_i0"), n, m, k)


@SETTINGS
@given(n=dims, m=dims, k=dims, fx=st.integers(1, 6), fy=st.integers(1, 6))
def test_tile_preserves_results(n: int, m: int, k: int, fx: int, fy: int) -> None:
    check_mm(tile(matmul_relu(n, m, k), "C_i0", "C_i1", fx, fy), n, m, k)


@SETTINGS
@given(n=dims, m=st.integers(1, 40), lanes=st.sampled_from([2, 4, 8, 16]))
def test_vectorize_and_unroll_preserve_results(n: int, m: int, lanes: int) -> None:
    f = elementwise(n, m)
    rng = np.random.default_rng(m)
    a = rng.standard_normal((n, m)).astype(np.float32)
    b = rng.standard_normal((m,)).astype(np.float32)
    want = a * 2 + b
    g = vectorize(split(f, "D_i1", lanes), "D_i1_i")
    np.testing.assert_allclose(run(g, a, b, out_shape=(n, m)), want, rtol=1e-6)
    g = unroll(split(f, "D_i0", 3), "D_i0_i")
    np.testing.assert_allclose(run(g, a, b, out_shape=(n, m)), want, rtol=1e-6)


def test_schedule_is_replayable_data() -> None:
    f = matmul_relu(8, 12, 5)
    sch = Schedule().add("split", "C_i1", 4).add("reorder", "C_i1_o", "C_i0").add(
        "unroll", "C_i1_i")
    again = Schedule.from_list(sch.to_list())
    assert func_to_text(sch.apply(f)) == func_to_text(again.apply(f))
    assert "split('C_i1', 4)" in str(sch)
    check_mm(again.apply(f), 8, 12, 5)


def test_split_docstring_shape() -> None:
    text = func_to_text(split(elementwise(2, 10), "D_i1", 4))
    assert "for D_i1_o in 0..3" in text and "for D_i1_i in 0..4" in text
    assert "if ((D_i1_o * 4) + D_i1_i) < 10" in text or "< 10" in text


def test_unknown_loop_is_named() -> None:
    with pytest.raises(KeyError, match="nope"):
        split(elementwise(2, 2), "nope", 2)


@SETTINGS
@given(n=dims, m=dims, k=dims, mr=st.integers(1, 6), nr=st.sampled_from([1, 4, 8, 16]))
def test_tile_reduction_preserves_results(n: int, m: int, k: int, mr: int, nr: int) -> None:
    from deepc.schedule.reduction import tile_reduction

    f = split(split(matmul_relu(n, m, k), "C_i0", mr), "C_i1", nr)
    f = reorder(f, "C_i0_o", "C_i1_o", "C_i0_i", "C_i1_i")
    g = tile_reduction(f, "C_i0_i", "C_i1_i")
    assert "C_acc: float32[" in func_to_text(g)
    check_mm(g, n, m, k)
    check_mm(vectorize(unroll(g, "C_i0_i"), "C_i1_i"), n, m, k)

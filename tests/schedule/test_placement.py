"""compute_at, compute_inline, cache_read and cache_write preserve results."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deepc.ir.expr import Var
from deepc.ir.loop import Allocate, Buffer, For, ForKind, PrimFunc, seq
from deepc.ir.loop_text import func_to_text
from deepc.ir.lower import lower
from deepc.ir.tensor import compute, placeholder, reduce_axis, rsum
from deepc.schedule import cache_read, cache_write, compute_at, compute_inline, split
from tests.schedule.test_primitives import check_mm, matmul_relu, run

SETTINGS = settings(max_examples=10, deadline=None)


def stencil(n: int, k: int) -> PrimFunc:
    """P = row sums of A (a reduction, so materialized); C[y] = P[y] + P[y+1]."""
    a = placeholder((n + 1, k), "float32", "A")
    r = reduce_axis(k, "r")
    p = compute((n + 1,), lambda i: rsum(a[i, r], r), "P")
    c = compute((n,), lambda y: p[y] + p[y + 1], "C")
    return lower([a], [c], "stencil")


@SETTINGS
@given(n=st.integers(1, 12), k=st.integers(1, 6), factor=st.integers(1, 5))
def test_compute_at_preserves_results(n: int, k: int, factor: int) -> None:
    f = stencil(n, k)
    a = np.random.default_rng(n).standard_normal((n + 1, k)).astype(np.float32)
    s = a.sum(1)
    want = s[:-1] + s[1:]
    g = compute_at(f, "P", "C_i0")
    text = func_to_text(g)
    assert text.index("for C_i0") < text.index("P_i0_at")
    np.testing.assert_allclose(run(g, a, out_shape=(n,)), want, rtol=1e-5, atol=1e-5)
    g = compute_at(split(f, "C_i0", factor), "P", "C_i0_o")
    np.testing.assert_allclose(run(g, a, out_shape=(n,)), want, rtol=1e-5, atol=1e-5)


def test_compute_inline_preserves_results() -> None:
    a, b, t = (Buffer("A", (6,), "float32"), Buffer("B", (6,), "float32"),
               Buffer("T", (6,), "float32"))
    i, j = Var("i"), Var("j")
    body = seq(For(i, 6, ForKind.SERIAL, _store(t, i, a[i] * 2.0)),
               For(j, 6, ForKind.SERIAL, _store(b, j, t[j] + 1.0)))
    f = PrimFunc("inl", (a, b), Allocate(t, body))
    g = compute_inline(f, "T")
    assert "T" not in func_to_text(g).replace("func inl", "")
    x = np.arange(6, dtype=np.float32)
    np.testing.assert_allclose(run(g, x, out_shape=(6,)), x * 2 + 1)


def _store(buf, i, value):  # type: ignore[no-untyped-def]
    from deepc.ir.loop import Store

    return Store(buf, (i,), value)


@SETTINGS
@given(n=st.integers(1, 9), m=st.integers(1, 9), k=st.integers(1, 9))
def test_cache_read_and_write_preserve_results(n: int, m: int, k: int) -> None:
    f = matmul_relu(n, m, k)
    g = cache_write(f, "D", "C_i0")
    assert "D_local" in func_to_text(g)
    check_mm(g, n, m, k)
    g = cache_read(f, "A", "C_i0")
    assert "A_local" in func_to_text(g)
    check_mm(g, n, m, k)
    check_mm(cache_read(cache_write(split(f, "C_i1", 4), "D", "C_i1_o"), "B", "C_i1_o"),
             n, m, k)


def test_reduction_lowering_uses_register_accumulator() -> None:
    a = placeholder((4, 3), "float32", "A")
    r = reduce_axis(3, "r")
    c = compute((4,), lambda i: rsum(a[i, r], r), "C")
    assert "alloc C_acc: float32[1] local" in func_to_text(lower([a], [c], "rs"))

"""Lowering tensor expressions to loop IR: inlining, epilogue fusion, results."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.expr import maximum
from deepc.ir.loop_text import func_to_text
from deepc.ir.loop_verify import verify_func
from deepc.ir.lower import lower
from deepc.ir.tensor import MATERIALIZED, compute, placeholder, reduce_axis, rsum
from tests.schedule.test_primitives import run


def test_epilogue_fused_into_reduction_store() -> None:
    a = placeholder((3, 4), "float32", "A")
    b = placeholder((4, 5), "float32", "B")
    bias = placeholder((5,), "float32", "bias")
    r = reduce_axis(4, "r")
    c = compute((3, 5), lambda i, j: rsum(a[i, r] * b[r, j], r), "C")
    d = compute((3, 5), lambda i, j: c[i, j] + bias[j], "D")
    e = compute((3, 5), lambda i, j: maximum(d[i, j], 0.0), "E")
    text = func_to_text(verify_func(lower([a, b, bias], [e], "dense_relu")))
    assert text.count("E[") == 1 and "alloc C:" not in text and "alloc D" not in text


def test_consumer_of_two_reductions_is_not_fused_twice() -> None:
    x = placeholder((4, 3), "float64", "x")
    r, q = reduce_axis(3, "r"), reduce_axis(3, "q")
    total = compute((4,), lambda i: rsum(x[i, r], r), "total")
    norm = compute((4,), lambda i: rsum(x[i, q] * x[i, q], q), "norm")
    out = compute((4,), lambda i: total[i] / norm[i], "out")
    f = verify_func(lower([x], [out], "k"))
    a = np.random.default_rng(0).random((4, 3))
    got = np.zeros(4)
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize

    JitModule(optimize(emit_module([f]), MachineSpec.host())).kernel("k", 2)(
        a.ctypes.data, got.ctypes.data)
    np.testing.assert_allclose(got, a.sum(1) / (a * a).sum(1))


def test_injective_stages_are_inlined() -> None:
    a = placeholder((8,), "float32", "A")
    b = compute((8,), lambda i: a[i] * 2.0, "B")
    c = compute((8,), lambda i: b[i] + 1.0, "C")
    f = lower([a], [c], "k")
    assert "B[" not in func_to_text(f)
    x = np.arange(8, dtype=np.float32)
    np.testing.assert_allclose(run(f, x, out_shape=(8,)), x * 2 + 1)



@pytest.mark.parametrize("tag", ["", MATERIALIZED])
def test_materialized_stage_is_computed_once_for_its_reductions(tag: str) -> None:
    """A MATERIALIZED stage read by two reductions is one buffer written once, not an
    expression inlined into each reduction's loop (three times here)."""
    x = placeholder((4, 6), "float32", "x")
    y = compute((4, 6), lambda i, j: x[i, j] * 2.0 + 1.0, "y", tag=tag)
    r, q = reduce_axis(6, "r"), reduce_axis(6, "q")
    s = compute((4,), lambda i: rsum(y[i, r], r), "s")
    m = compute((4,), lambda i: rsum(y[i, q] * y[i, q], q), "m")
    text = func_to_text(verify_func(lower([x], [s, m], "k")))
    assert ("alloc y:" in text) == (tag == MATERIALIZED)
    assert text.count("* 2.0") == (1 if tag else 3)

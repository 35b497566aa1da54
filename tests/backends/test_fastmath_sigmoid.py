"""The inline float32 exp, sigmoid and tanh of the LLVM backend against float64 numpy, in
ulps over a sweep of all float32 bit patterns, at several vector widths."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.backends.llvm import fastmath as fm
from tests.backends.fastmath_harness import jit_map, ulp_error

BITS = np.arange(0, 1 << 32, 997, dtype=np.uint64).astype(np.uint32)
SPECIAL = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-30, 88.72, 88.73, -87.3, -103.9, -104.5,
                    -120.0, 200.0, -200.0, np.inf, -np.inf, np.nan], np.float32)


def _inputs(lanes: int) -> np.ndarray:
    x = np.concatenate([BITS.view(np.float32), SPECIAL])
    return x[: x.size // lanes * lanes]


def _sigmoid(v: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(v))
    return np.where(v >= 0, 1 / (1 + e), e / (1 + e))


# (expansion, float64 reference, max ulp error)
CASES = {"exp": (fm.exp_f32, np.exp, 1.0), "sigmoid": (fm.sigmoid_f32, _sigmoid, 2.5),
         "tanh": (fm.tanh_f32, np.tanh, 2.0)}


@pytest.mark.parametrize("lanes", [16, 8, 4, 1])
@pytest.mark.parametrize("name", sorted(CASES))
def test_accuracy_and_special_values(name: str, lanes: int) -> None:
    expansion, reference, max_ulp = CASES[name]
    x = _inputs(lanes)
    y = jit_map(expansion, lanes)(x)
    with np.errstate(all="ignore"):
        ref = reference(x.astype(np.float64))
        ref32 = ref.astype(np.float32)
    finite = np.isfinite(x) & np.isfinite(ref32)
    assert ulp_error(y[finite], ref[finite]).max() <= max_ulp
    assert np.array_equal(np.isnan(y), np.isnan(x))
    inf = np.isinf(ref32)
    assert np.array_equal(y[inf], ref32[inf])
    if name != "exp":
        assert np.all(np.abs(y[~np.isnan(x)]) <= 1.0)


def test_sigmoid_near_one_rounds_like_division() -> None:
    """1 - sigmoid(x) must not pick up estimate noise (GRU's (1 - z) h depends on it)."""
    x = np.linspace(5.0, 30.0, 1 << 16).astype(np.float32)
    y = jit_map(fm.sigmoid_f32, 16)(x)
    e = np.exp(-x.astype(np.float64)).astype(np.float32)
    expected = (np.float32(1) / (np.float32(1) + e)).astype(np.float32)
    assert np.abs(y.astype(np.float64) - expected).max() <= np.spacing(np.float32(0.5))


def test_sigmoid_pattern_is_recognised() -> None:
    from deepc.ir import expr as E
    from deepc.ops.elementwise import UNARY_TE

    x = E.Var("x", "float32")
    assert fm.sigmoid_operand(UNARY_TE["sigmoid"](x, {})) == x
    assert fm.sigmoid_operand(E.as_expr(1.0, x) / (E.as_expr(2.0, x) + E.call("exp", -x))) \
        is None

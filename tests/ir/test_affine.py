"""Affine forms of index expressions: an index unravelled by // and % and flattened again
rejoins into the index it came from; other uses of // and % stay opaque."""

from __future__ import annotations

from deepc.backends.llvm.analysis import lane_coefficient
from deepc.ir.affine import affine, flat_offset
from deepc.ir.expr import INDEX, Const, Var

K, I = Var("k"), Var("i")
ZERO = Const(0, INDEX)


def test_unravelled_and_flattened_index_is_affine() -> None:
    # a [1, 1280] row read from a pooled NCHW16c value [1, 80, 1, 1, 16]
    offset = flat_offset((1, 80, 1, 1, 16), (ZERO, K // 16, ZERO, ZERO, K % 16))
    assert affine(offset).terms == ((K, 1),)
    scaled = affine((K * 4 + 1) // 16 * 32 + (K * 4 + 1) % 16 * 2 + 3)
    assert scaled.terms == ((K, 8),) and scaled.const == 5
    assert lane_coefficient(offset, K) == 1


def test_div_and_mod_that_do_not_pair_stay_opaque() -> None:
    for e in (K // 16 * 16 + K % 8, K // 16 * 8 + K % 16, K // 16 * 16 + I % 16):
        form = affine(e)
        assert any(not isinstance(t, Var) for t, _ in form.terms)
        assert lane_coefficient(e, K) is None

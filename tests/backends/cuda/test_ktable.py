"""Conv-window offset tables: one declaration per distinct table, warp-uniform ones in
constant memory until its budget is spent."""

from __future__ import annotations

from deepc.backends.cuda.ktable import CONSTANT_BYTES, KTables


def test_equal_tables_are_declared_once() -> None:
    t = KTables()
    a, b = t.name([0, 1, 2, 58], True), t.name([0, 1, 2, 58], True)
    assert a == b and len(t.declarations()) == 1
    assert t.declarations()[0].startswith("__constant__ const int")


def test_divergent_reads_and_overflow_stay_in_global_memory() -> None:
    t = KTables()
    assert t.declarations() == [] and t.name([0, 9], False).startswith("deepc_kg")
    big = list(range(CONSTANT_BYTES // 4))  # fills the constant budget exactly
    assert t.name(big, True).startswith("deepc_kc")
    spill = t.name([5, 6, 7], True)  # no room left: global memory
    assert spill.startswith("deepc_kg") and t.declarations()[-1].startswith("__device__")


def test_offsets_past_int32_use_64_bit_entries() -> None:
    t = KTables()
    t.name([0, 2**31], True)
    assert "long long" in t.declarations()[0]

"""Conv-window offset tables: one declaration per distinct table, warp-uniform ones in
constant memory until its budget is spent."""

from __future__ import annotations

from deepc.backends.cstyle_tables import Tables
from deepc.backends.cuda.dialect import CUDA
from deepc.ir.loop import Buffer

BYTES = CUDA.constant_bytes


def _tables() -> Tables:
    return Tables(CUDA.constant_qualifier, CUDA.table_qualifier, BYTES)


def _name(t: Tables, values: list[int], uniform: bool) -> str:
    buf = Buffer("k", (len(values),), "int64", "constant" if uniform else "global")
    return t.name(buf, tuple(values), "long long")


def test_equal_tables_are_declared_once() -> None:
    t = _tables()
    a, b = _name(t, [0, 1, 2, 58], True), _name(t, [0, 1, 2, 58], True)
    assert a == b and len(t.declarations()) == 1
    assert t.declarations()[0].startswith("__constant__ const int")


def test_divergent_reads_and_overflow_stay_in_global_memory() -> None:
    t = _tables()
    assert t.declarations() == [] and _name(t, [0, 9], False).startswith("deepc_kg")
    big = list(range(BYTES // 4))  # fills the constant budget exactly
    assert _name(t, big, True).startswith("deepc_kc")
    spill = _name(t, [5, 6, 7], True)  # no room left: global memory
    assert spill.startswith("deepc_kg") and t.declarations()[-1].startswith("__device__")


def test_offsets_past_int32_use_64_bit_entries() -> None:
    t = _tables()
    _name(t, [0, 2**31], True)
    assert "long long" in t.declarations()[0]

"""The CPU knob space (tune/space.py): the tile-loop knobs offered on tiled nests only, a
sample that changes a nest's tile lets the scheduler spread its loops afresh, the register
check counts every block of a tile, and the cost model's features see the new knobs."""

from __future__ import annotations

import random

from deepc.schedule.cpu_machine import CpuMachine
from deepc.tune.space import knob_axes, knob_features, respread_threads, sample, within_registers

MACHINE = CpuMachine(256, 12, 2, 32, 512)
TILED = {"c.kind": "register_tile", "c.vector": 8, "c.rows": 6, "c.row_pairs": False,
         "c.threads": 28, "p.kind": "vector", "p.vector": 8, "p.threads": 4}


def test_tile_loop_axes_only_on_tiled_nests() -> None:
    axes = knob_axes(TILED, MACHINE)
    for knob in ("reduce_inner", "unroll", "row_loop", "pair_block", "outer_inner"):
        assert f"c.{knob}" in axes and f"p.{knob}" not in axes
    assert axes["c.unroll"][0] == 1 and axes["c.reduce_inner"][0] == 0


def test_a_sample_changes_a_knob_the_record_leaves_out() -> None:
    for seed in range(5):
        assert sample(TILED, {"c.unroll": [1, 2, 4]}, random.Random(seed))["c.unroll"] in (2, 4)


def test_changing_a_nest_frees_only_its_thread_count() -> None:
    knobs = respread_threads({**TILED, "c.unroll": 2}, TILED)
    assert "c.threads" not in knobs and knobs["p.threads"] == 4
    assert respread_threads({**TILED, "c.threads": 1}, TILED)["c.threads"] == 1
    both = {**TILED, "c.unroll": 2, "c.threads": 1}
    assert respread_threads(both, TILED) == both
    assert respread_threads(dict(TILED), TILED) == TILED


def test_register_check_counts_pair_blocks() -> None:
    assert within_registers({**TILED, "c.rows": 12}, MACHINE)
    assert within_registers({**TILED, "c.rows": 12, "c.row_pairs": True}, MACHINE)
    assert not within_registers({**TILED, "c.rows": 12, "c.pair_block": 3}, MACHINE)


def test_features_tell_the_new_knobs_apart() -> None:
    base = knob_features(TILED, "c.", 8)
    for change in ({"c.unroll": 4}, {"c.reduce_inner": 1}, {"c.row_loop": 1},
                   {"c.pair_block": 3, "c.row_pairs": True}, {"c.outer_inner": 1}):
        assert knob_features({**TILED, **change}, "c.", 8) != base, change

"""The CPU knob space (tune/space.py): the tile-loop knobs offered on tiled nests only (the
reduction's blocks only where its weights pass the L2 cache), a sample that changes a nest's
tile lets the scheduler spread its loops afresh, the register check counts every block of a
tile, and the cost model's features see the new knobs; and the search moves on from a task
that stops improving (tune/tuner.py)."""

from __future__ import annotations

import random

import numpy as np

from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.schedule import Schedule
from deepc.tune import tuner
from deepc.tune.cost_model import CostModel
from deepc.tune.log import TuneLog
from deepc.tune.measure import Measurement
from deepc.tune.space import (
    accumulators,
    knob_axes,
    knob_features,
    register_tiles,
    respread_threads,
    sample,
    within_registers,
)

MACHINE = CpuMachine(256, 12, 2, 32, 512)
TILED = {"c.kind": "register_tile", "c.vector": 8, "c.rows": 6, "c.row_pairs": False,
         "c.threads": 28, "p.kind": "vector", "p.vector": 8, "p.threads": 4}


def test_tile_loop_axes_only_on_tiled_nests() -> None:
    axes = knob_axes(TILED, MACHINE)
    for knob in ("reduce_inner", "unroll", "row_loop", "pair_block", "outer_inner"):
        assert f"c.{knob}" in axes and f"p.{knob}" not in axes
    assert axes["c.unroll"][0] == 1 and axes["c.reduce_inner"][0] == 0


def test_reduction_blocks_only_where_the_weights_pass_l2() -> None:
    assert not any(k.endswith("reduce_blocks") for k in knob_axes(TILED, MACHINE))
    axes = knob_axes(TILED, MACHINE, frozenset({"c.", "p."}))
    assert axes["c.reduce_blocks"][0] == 1 and "p.reduce_blocks" not in axes


def test_a_big_conv_is_offered_reduction_blocks() -> None:
    """A 3x3 conv over 64 channels reads 147 KiB of weights: past a 128 KiB L2 it is offered
    blocks of its reduction, under a 512 KiB one not."""
    from deepc.lowering.kernels import graph_kernels
    from deepc.ops.conv_nchwc import weight_to_blocked
    from deepc.tune.tasks import extract_tasks
    from tests.passes.support import Net, weights

    n = Net(x=(1, 8, 6, 6, 8))
    w = weight_to_blocked(weights(64, 64, 3, 3), 8, 8, False)
    graph = n.graph(n("conv_nchwc", "x", n.const(w), n.const(weights(64)), pads=(1, 1, 1, 1)))
    kernels = graph_kernels(graph, [list(graph.nodes)])

    class Target:
        def __init__(self, l2: int):
            self.vector_bits, self.accumulator_registers, self.cores = 256, 12, 1
            self.l1d_kib, self.l2_kib, self.cache_line = 32, l2, 64
            self.triple, self.features = "x86_64-unknown-linux-gnu", ("+avx2", "+fma")

        def fingerprint(self) -> str:
            return f"test-l2-{self.l2_kib}"

    small, big = (extract_tasks(kernels, Target(l2))[0].axes() for l2 in (128, 512))
    assert any(k.endswith("reduce_blocks") for k in small)
    assert not any(k.endswith("reduce_blocks") for k in big)
    # a large image under small weights: its input passes 128 KiB, its weights do not
    n = Net(x=(1, 1, 64, 64, 8))
    w = weight_to_blocked(weights(8, 8, 3, 3), 8, 8, False)
    graph = n.graph(n("conv_nchwc", "x", n.const(w), n.const(weights(8)), pads=(1, 1, 1, 1)))
    wide = extract_tasks(graph_kernels(graph, [list(graph.nodes)]), Target(128))[0].axes()
    assert not any(k.endswith("reduce_blocks") for k in wide)


def test_a_pool_over_padding_is_offered_rows() -> None:
    """Its guarded reads are versioned away inside the image, so the scheduler takes rows
    there and the search offers them (before, every rows value but 1 was rejected)."""
    from deepc.lowering.kernels import graph_kernels
    from deepc.tune.tasks import _cpu_task
    from tests.passes.support import Net

    n = Net(x=(1, 1, 9, 48, 16))
    graph = n.graph(n("max_pool", "x", layout="NCHWc", kernel_shape=(3, 3), strides=(2, 2),
                      pads=(1, 1, 1, 1)))
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    task = _cpu_task("pool", kernel, CpuMachine(512, 24, 1, 48, 1024))
    rows = tuner._Search(None, None, None, random.Random(0)).axes(task)["rows"]  # type: ignore[arg-type]
    assert {1, 4, 8, 12} <= set(rows)


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


def test_register_tiles_fill_the_registers() -> None:
    """Every tile offered holds more than half of the 12 accumulators and no more, with only
    the tile's knobs changed."""
    tiles = register_tiles(TILED, "c.", MACHINE)
    assert tiles and all(6 < accumulators(t, "c.", 8) <= 12 for t in tiles)
    assert {(t["c.rows"], t.get("c.pair_block", 2 if t["c.row_pairs"] else 1))
            for t in tiles if t["c.vector"] == 8} >= {(12, 1), (6, 2), (4, 3), (3, 4)}
    tile_knobs = {"c.vector", "c.rows", "c.row_pairs", "c.pair_block"}
    for t in tiles:
        assert {k: v for k, v in t.items() if k not in tile_knobs} == {
            k: v for k, v in TILED.items() if k not in tile_knobs}
    assert register_tiles(TILED, "p.", MACHINE) == []  # not a register tile


def test_a_classifier_is_seeded_with_blocks_of_short_rows() -> None:
    """Squeezenet's classifier, 63 blocks of 16 channels over 13x13 pixels: from a default
    that holds one block's 13 pixels (13 of 24 accumulators: the default before
    cpu_tile_blocks.short_tile) the first seeds take 3 blocks of 7 or 8 rows (the last tile
    short: 13 = 7 + 6), which no random change of one to three knobs found in 134 trials,
    and the scheduler takes every seed."""
    from dataclasses import replace

    from deepc.lowering.kernels import graph_kernels
    from deepc.ops.conv_nchwc import weight_to_blocked
    from deepc.tune.tasks import _cpu_task
    from tests.passes.support import Net, weights

    n = Net(x=(1, 4, 13, 13, 16))
    w = weight_to_blocked(weights(1008, 64, 1, 1), 16, 16, False)
    graph = n.graph(n("conv_nchwc", "x", n.const(w), n.const(weights(1008))))
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    task = _cpu_task("classifier", kernel, CpuMachine(512, 24, 1, 48, 1024))
    task = replace(task, default=task.schedule({"kind": "register_tile", "vector": 16,
                                                "rows": 13, "row_pairs": False}))
    seeds = task.seeds()
    assert {(s["rows"], s["pair_block"]) for s in seeds[:2]} == {(7, 3), (8, 3)}
    for s in seeds:
        assert dict(task.schedule(s).knobs) == s  # each replays to itself


def test_features_tell_the_new_knobs_apart() -> None:
    base = knob_features(TILED, "c.", 8)
    for change in ({"c.unroll": 4}, {"c.reduce_inner": 1}, {"c.row_loop": 1},
                   {"c.pair_block": 3, "c.row_pairs": True}, {"c.outer_inner": 1},
                   {"c.reduce_blocks": 4}):
        assert knob_features({**TILED, **change}, "c.", 8) != base, change


class _FlatTask:
    """A task whose every candidate takes as long as its default."""

    def __init__(self, key: str):
        self.key, self.kernel, self.ops, self.count = key, key, ("op",), 1
        self.default = Schedule(knobs={"v": 0})
        self.features: list[float] = [1.0]
        self.tolerance = 1e-4

    def schedule(self, knobs: dict) -> Schedule:  # type: ignore[type-arg]
        return Schedule(knobs=dict(knobs))

    def axes(self) -> dict:  # type: ignore[type-arg]
        return {"v": list(range(10_000))}

    def fits(self, knobs: dict) -> bool:  # type: ignore[type-arg]
        return True

    def canonical(self, knobs: dict, base: dict | None = None) -> dict:  # type: ignore[type-arg]
        return knobs

    def knob_features(self, knobs: dict) -> list[float]:  # type: ignore[type-arg]
        return [float(knobs["v"])]

    def seeds(self) -> list[dict]:  # type: ignore[type-arg]
        return []


class _Flat:
    def measure(self, task, knobs, steps) -> Measurement:  # type: ignore[no-untyped-def]
        return Measurement(1e-3, None, [np.zeros(1)], 1e-3, 1.0)

    def close(self) -> None:
        pass


class _Clock:
    """time.perf_counter that advances 2 ms a reading: the tuner's turns are the same on a
    loaded machine (it failed at load 60, the second round never reached)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 2e-3
        return self.now


def test_a_task_that_stops_improving_hands_its_time_on(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two tasks, one with far more weight: flat candidates end its turn after ten trials,
    the other gets its turn, and the time left goes round again until the budget is spent."""
    monkeypatch.setattr(tuner, "STALE_TRIALS", 10)
    monkeypatch.setattr(tuner, "time", _Clock())  # the budget in steps, not in the load
    heavy, light = _FlatTask("a"), _FlatTask("b")
    heavy.count = 1000
    log = TuneLog(tmp_path / "l.jsonl", "t")
    summary = tuner.tune([heavy, light], _Flat(), log, budget_s=3)  # type: ignore[list-item]
    order = [r.workload for r in log]
    assert order[:2] == ["a", "b"]  # the defaults first
    assert order[2:12] == ["a"] * 10 and order[12] == "b"
    assert order.count("b") > 11  # the second round reached it too
    assert 2.5 < summary.elapsed < 6


class _SeededTask(_FlatTask):
    def seeds(self) -> list[dict]:  # type: ignore[type-arg]
        return [{"v": 7}, {"v": 3}]


def test_seeds_are_measured_before_the_random_search(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = TuneLog(tmp_path / "l.jsonl", "t")
    tuner.tune([_SeededTask("a")], _Flat(), log, budget_s=0.5)  # type: ignore[list-item]
    values = [r.knobs["v"] for r in log]
    assert values[:3] == [0, 7, 3] and len(values) > 3
    assert values.count(7) == 1 and values.count(3) == 1  # a seed measured is not again


class _TwoKnobTask(_FlatTask):
    def __init__(self, key: str):
        super().__init__(key)
        self.default = Schedule(knobs={"v": 0, "w": 0})

    def axes(self) -> dict:  # type: ignore[type-arg]
        return {"v": list(range(100)), "w": list(range(100))}

    def seeds(self) -> list[dict]:  # type: ignore[type-arg]
        return [{"v": 7, "w": 0}]


class _SevenIsFast(_Flat):
    def measure(self, task, knobs, steps) -> Measurement:  # type: ignore[no-untyped-def]
        return Measurement(5e-4 if knobs["v"] == 7 else 1e-3, None, [np.zeros(1)], 1e-3, 1.0)


def test_the_search_tries_changes_of_the_best(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Once a seed wins, half the samples change it rather than the default: its other knob
    gets tried with it, where samples of the default alone reach v=7 once in a hundred."""
    log = TuneLog(tmp_path / "l.jsonl", "t")
    task, res = _TwoKnobTask("a"), tuner.TaskResult("a", "a", ["op"], 1)
    search = tuner._Search(_SevenIsFast(), log, CostModel(), random.Random(0))  # type: ignore[arg-type]
    search.default(task, res)  # type: ignore[arg-type]
    for _ in range(60):
        assert search.step(task, res)  # type: ignore[arg-type]
    after = [r.knobs for r in log][2:]  # past the default and the seed
    assert sum(k["v"] == 7 and k["w"] != 0 for k in after) > len(after) // 5

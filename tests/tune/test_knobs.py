"""Knob overrides of the CPU default schedules: a record's knobs replay to its steps, a
changed knob gives another schedule with the same results, an impossible one raises."""

from __future__ import annotations

import pytest

import deepc
from deepc.errors import ScheduleError
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.record import Workload
from deepc.tune.space import knob_axes
from tests.tune.conftest import TINY, assert_matches_ort


def test_default_knobs_replay_exactly(tiny_kernels, host) -> None:  # type: ignore[no-untyped-def]
    machine = CpuMachine.of(host)
    for k in tiny_kernels:
        sch = default_schedule(k.func, machine)
        again = default_schedule(k.func, machine, sch.knobs)
        assert again.to_list() == sch.to_list(), k.name
        assert again.knobs == sch.knobs


def _tiled(kernels, machine):  # type: ignore[no-untyped-def]
    for k in kernels:
        sch = default_schedule(k.func, machine)
        if any(str(v) in ("register_tile", "packed_gemm") for v in sch.knobs.values()):
            return k, sch
    raise AssertionError("the tiny model has a convolution")


def test_changed_knobs_keep_results(tiny_kernels, host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every kernel with a different valid value of each knob: compiled, the model still
    matches onnxruntime, and the records say tuned."""
    machine = CpuMachine.of(host)
    tuned = {}
    for k in tiny_kernels:
        default = default_schedule(k.func, machine)
        for name, values in knob_axes(dict(default.knobs), machine).items():
            for v in values:
                knobs = {**default.knobs, name: v}
                try:
                    sch = default_schedule(k.func, machine, knobs)
                except ScheduleError:
                    continue
                if sch.to_list() != default.to_list():
                    tuned[Workload.of(k.func, k.ops, host.fingerprint()).key] = sch.knobs
                    break
            if Workload.of(k.func, k.ops, host.fingerprint()).key in tuned:
                break
    assert len(tuned) >= 3
    compiled = deepc.compile(TINY, host, tuned=tuned)
    sources = {r.workload.key: r.source for r in compiled.records}
    assert all(sources[key] == "tuned" for key in tuned)
    assert sum(s == "tuned" for s in sources.values()) == len(tuned)
    assert_matches_ort(compiled, tmp_path)


@pytest.mark.parametrize("knobs", [
    {"vector": 7}, {"rows": 10_000}, {"pack": True, "kind": "packed_gemm"}, {"no_such": 1},
])
def test_impossible_knobs_raise(tiny_kernels, host, knobs) -> None:  # type: ignore[no-untyped-def]
    machine = CpuMachine.of(host)
    k, sch = _tiled(tiny_kernels, machine)
    kind = next(n for n, v in sch.knobs.items() if v in ("register_tile", "packed_gemm"))
    prefix = kind.removesuffix("kind")
    with pytest.raises(ScheduleError):
        default_schedule(k.func, machine, {**sch.knobs, **{prefix + n: v
                                                          for n, v in knobs.items()}})

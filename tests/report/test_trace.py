"""`deepc bench --trace`: a Chrome trace with exactly one complete event per kernel per timed
run, in plan order, carrying the kernel's ops, shapes and FLOPs."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

from deepc.report.trace import chrome_trace
from deepc.runtime.kernel_trace import KernelRuns
from tests.test_cli import EXAMPLE, assert_one_line_error, run

RUNS = 4


def kernel_events(trace: dict) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in trace["traceEvents"] if e.get("cat") == "kernel"]


def test_bench_trace_has_one_event_per_kernel_per_run(tmp_path: Path) -> None:
    import deepc

    out = tmp_path / "run.json"
    code, _, err = run("bench", str(EXAMPLE), "--threads", "1", "--runs", str(RUNS),
                       "--warmup", "1", "--compare", "none", "--trace", str(out))
    assert code == 0, err
    trace = json.loads(out.read_text())
    calls = [k.name for k in deepc.compile(EXAMPLE).plan.calls]
    events = kernel_events(trace)
    assert len(events) == RUNS * len(calls)
    assert Counter(e["name"] for e in events) == {name: RUNS for name in calls}
    for r in range(RUNS):  # each run lists the kernels in plan order, one after another
        mine = [e for e in events if e["args"]["run"] == r]
        assert [e["name"] for e in mine] == calls
        assert all(a["ts"] + a["dur"] <= b["ts"] + 1e-3 for a, b in itertools.pairwise(mine))
    for e in events:
        assert e["ph"] == "X" and e["dur"] > 0 and {"pid", "tid", "ts"} <= e.keys()
        assert e["args"]["ops"] and e["args"]["outputs"] and e["args"]["flops"] >= 0
    assert any(e["args"]["flops"] > 0 for e in events)
    named = {(e["pid"], e["tid"]) for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in events} <= named  # each event on a named thread


def test_cuda_launches_nest_inside_their_kernel() -> None:
    """CUDA runs (recorded here: no GPU in CI) put each launch inside its kernel's event."""
    info = {"kernel": "k000_conv_relu", "ops": ["conv", "relu"], "nodes": ["c", "r"],
            "inputs": [[1, 3, 8, 8]], "outputs": [[1, 4, 8, 8]], "dtype": "float32",
            "flops": 4096}
    runs = KernelRuns("m", "cuda", 1, [info], [[(10.0, 5.0)], [(30.0, 6.0)]],
                      [[[2.0, 3.0]], [[1.0, 5.0]]])
    trace = chrome_trace([runs])
    assert len(kernel_events(trace)) == 2
    launches = [e for e in trace["traceEvents"] if e.get("cat") == "launch"]
    assert [(e["ts"], e["dur"]) for e in launches] == [(10.0, 2.0), (12.0, 3.0), (30.0, 1.0),
                                                       (31.0, 5.0)]


def test_trace_of_an_emulated_bundle_is_refused(tmp_path: Path) -> None:
    code, _, err = run("bench", str(EXAMPLE), "--target", "wasm32-simd", "--runs", "1",
                       "--compare", "none", "--trace", str(tmp_path / "t.json"))
    assert_one_line_error(code, err, 2, "--trace")
    assert not (tmp_path / "t.json").exists()


def test_cuda_trace_reads_the_events_between_launches() -> None:
    """CudaLibrary.trace_launches and the kernel spans built from it, on a stand-in for pycuda
    whose launches take known times (CI has no GPU)."""
    from types import SimpleNamespace

    from deepc.runtime.cuda_model import CudaLibrary
    from deepc.runtime.kernel_trace import _trace_cuda

    clock = [0.0]  # milliseconds on the stand-in stream

    class Event:
        def record(self, stream: object) -> None:
            self.at = clock[0]

        def synchronize(self) -> None:
            pass

        def time_till(self, end: Event) -> float:
            return end.at - self.at

    def launch(ms: float) -> SimpleNamespace:
        def call(*_: object, **__: object) -> None:  # shared_size=
            clock[0] += ms
        return SimpleNamespace(prepared_async_call=call)

    lib = CudaLibrary.__new__(CudaLibrary)
    lib.cuda, lib.stream = SimpleNamespace(Event=Event), None
    lib.launches = [(launch(ms), (1,), (1,), (), 0) for ms in (0.5, 0.25, 1.0)]
    model = SimpleNamespace(_library=lib, run=lambda feeds: None)
    kernels = [SimpleNamespace(name="k0"), SimpleNamespace(name="k1")]
    compiled = SimpleNamespace(graph=SimpleNamespace(name="m"),
                               plan=SimpleNamespace(calls=kernels),
                               module=SimpleNamespace(launches={"k0": [1, 2], "k1": [3]}))
    runs = _trace_cuda(model, compiled, {}, runs=2, warmup=1, info=[{}, {}])
    assert runs.spans == [[(0.0, 750.0), (750.0, 1000.0)], [(1750.0, 750.0), (2500.0, 1000.0)]]
    assert runs.launches == [[[500.0, 250.0], [1000.0]], [[500.0, 250.0], [1000.0]]]


def test_trace_into_a_missing_folder_fails_before_benching(tmp_path: Path) -> None:
    code, _, err = run("bench", str(EXAMPLE), "--compare", "none", "--trace",
                       str(tmp_path / "no" / "t.json"))
    assert_one_line_error(code, err, 2, "does not exist")


def test_kernel_calls_outlive_their_binding_while_iterated(tmp_path: Path) -> None:
    """`for kernel, call in kernel_calls(...)` keeps the bound buffers alive: the calls write
    into the output arrays the binding owns (freed early, they corrupted the heap)."""
    import gc
    import weakref

    import deepc
    from deepc.runtime.inputs import random_inputs
    from deepc.runtime.profile import kernel_calls

    compiled = deepc.compile(EXAMPLE)
    model = deepc.load(compiled.save(tmp_path / "m.tar"))
    bound = kernel_calls(model, compiled, random_inputs(compiled.graph, 0))
    alive = weakref.ref(bound)
    calls = iter(bound)
    del bound
    gc.collect()
    assert alive() is not None
    for _, call in calls:
        call()

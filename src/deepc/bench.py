"""Benchmarks: deepc against a peer runtime, side by side in one process.

The two run alternately on the same inputs (warm-up first, then interleaved timed runs), so
drift on a shared machine hits both alike; the result is the median and p90 of each and the
ratio deepc / peer.
"""

from __future__ import annotations

import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepc.errors import DeepcNotice, FixedDimReplaced, InputError
from deepc.runtime.kernel_trace import KernelRuns, trace_runs


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int
    # the process's CPU time per run (1 thread only): what the run cost, without the time a
    # loaded machine kept it off its core, which wall-clock medians and p10s of a shared
    # 2-core machine include
    cpu_median_ms: float | None = None

    @staticmethod
    def of(seconds: list[float], cpu_seconds: list[float] | None = None) -> Timing:
        ms = sorted(s * 1e3 for s in seconds)
        cpu = statistics.median(cpu_seconds) * 1e3 if cpu_seconds else None
        return Timing(statistics.median(ms), ms[min(len(ms) - 1, int(0.9 * len(ms)))], len(ms),
                      cpu)


@dataclass
class BenchResult:
    model: str
    threads: int
    deepc: Timing
    peer: Timing | None = None
    peer_name: str = ""
    compile_seconds: float = 0.0
    matches: bool | None = None
    emulated: bool = False  # timed under `emulator` here: not the device's speed
    emulator: str | None = None
    estimated: bool = False  # the device's latency estimated from the schedule, not timed
    profile: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)  # more peers: name -> median ms
    trace: KernelRuns | None = None  # the runs again kernel by kernel (bench --trace)

    @property
    def ratio(self) -> float | None:
        return None if self.peer is None else self.deepc.median_ms / self.peer.median_ms

    @property
    def cpu_ratio(self) -> float | None:
        """deepc's CPU time per run over the peer's, where both were measured (1 thread)."""
        if self.peer is None or self.deepc.cpu_median_ms is None or not self.peer.cpu_median_ms:
            return None
        return self.deepc.cpu_median_ms / self.peer.cpu_median_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "threads": self.threads,
            "deepc_ms": round(self.deepc.median_ms, 4), "deepc_p90_ms": round(self.deepc.p90_ms, 4),
            f"{self.peer_name or 'peer'}_ms": None if self.peer is None
            else round(self.peer.median_ms, 4),
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            **({"deepc_cpu_ms": round(self.deepc.cpu_median_ms, 4)}
               if self.deepc.cpu_median_ms is not None else {}),
            **({"cpu_ratio": round(self.cpu_ratio, 4)} if self.cpu_ratio is not None else {}),
            "runs": self.deepc.runs, "compile_seconds": round(self.compile_seconds, 3),
            "outputs_match": self.matches, "emulated": self.emulated,
            **({"emulator": self.emulator} if self.emulated else {}),
            **({"estimated": True} if self.estimated else {}),
            **({"profile": self.profile} if self.profile else {}),
            **({"peers_ms": self.extra} if self.extra else {}),
        }


SETTLE_S = 0.002  # untimed pause after each call: the last runtime's spinning workers park


def interleaved(fns: list[Callable[[], Any]], runs: int, warmup: int,
                settle_s: float = SETTLE_S,
                cpu: list[list[float]] | None = None) -> list[list[float]]:
    """Time each function `runs` times, alternating between them, after `warmup` rounds.

    Thread pools (deepc's, onnxruntime's) spin a while after a run before they sleep; on a
    machine with few cores that spinning would be charged to whichever runs next, so each
    call is followed by a short untimed pause. With `cpu` (one list per function), each
    call's process CPU time is appended there too.
    """
    if cpu is not None:
        cpu[:] = [[] for _ in fns]
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for k, fn in enumerate(fns):
            cpu_start = time.process_time()
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
            if cpu is not None:
                cpu[k].append(time.process_time() - cpu_start)
            if settle_s:
                time.sleep(settle_s)
    return times


def onnxruntime_session(path: Path, threads: int, profile_prefix: Path | None = None) -> Any:
    """A CPU session on `threads` threads; with `profile_prefix`, it records onnxruntime's
    own per-node profile (Chrome trace JSON, written by session.end_profiling())."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    # onnxruntime's workers spin inside a run as usual, but stop when it ends: by default they
    # keep spinning between runs and would hold the cores while deepc's run is timed
    # (squeezenet at 2 threads: deepc 8.7 ms beside spinning workers, 4.4 ms without; ORT's own
    # time unchanged, 4.3 vs 4.2 ms)
    opts.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def bench_model(path: str | Path, target: Any = "host", *, threads: int = 0,
                compare: str | None = "onnxruntime", runs: int = 50, warmup: int = 5,
                seed: int = 0, profile: bool = False, opt_level: int = 2, batch: int = 0,
                allow_tf32: bool = False, remote: Any = None,
                tuned: Mapping[str, Mapping[str, Any]] | None = None,
                trace: bool = False) -> BenchResult:
    """Compile `path`, then time deepc and (optionally) onnxruntime alternately.

    `batch` (when set) replaces the first input's leading dimension. On CUDA targets the
    peer may be "torch" (eager, and torch.compile where it works; see runtime/cuda_bench).
    With `remote` (a deepc.rpc.remote.Remote) the board times the bundle instead. `tuned`
    (deepc.tune.log.best_knobs of a tuning log) schedules those workloads with its knobs.
    `trace` runs the model `runs` times more after the timed runs, kernel by kernel, each
    kernel's start and duration recorded (result.trace)."""
    import os
    import tempfile

    import deepc
    from deepc.runtime.inputs import random_inputs

    path = Path(path)
    shapes = batch_shapes(path, batch, target, compare) if batch else None
    with warnings.catch_warnings():  # batch_shapes has said what replacing a fixed batch does
        warnings.simplefilter("ignore", FixedDimReplaced)
        compiled = deepc.compile(path, target, opt_level=opt_level, input_shapes=shapes,
                                 allow_tf32=allow_tf32 or None, tuned=tuned)
    if remote is not None:
        return _bench_remote(path, compiled, remote, random_inputs(compiled.graph, seed),
                             compare, runs, warmup, threads, profile or trace)
    with tempfile.TemporaryDirectory(prefix="deepc-bench-") as tmp:
        model = deepc.load(compiled.save(Path(tmp) / "model.tar"))
    cores = os.cpu_count() or 1
    model.set_num_threads(threads)
    feeds = random_inputs(compiled.graph, seed)
    fns: list[Callable[[], Any]] = [lambda: model.run(feeds)]
    peer = None
    if compiled.target.kind == "cuda":
        result = _bench_cuda(path, compiled, model, feeds, compare, runs, warmup, allow_tf32)
        if profile:
            from deepc.runtime.profile import profile_cuda

            result.profile = profile_cuda(model, compiled, feeds)
        if trace:
            result.trace = trace_runs(model, compiled, feeds, runs, warmup)
        return result
    if compare == "onnxruntime-web":
        return _bench_ort_web(path, compiled, model, feeds, runs, warmup)
    if model.emulated or compiled.target.kind == "wasm":
        return _bench_self_timed(path, compiled, model, feeds, compare, runs, warmup,
                                 profile or trace)
    if compare == "onnxruntime":
        peer = onnxruntime_session(path, threads or cores)
        fns.append(lambda: peer.run(None, feeds))
    elif compare not in (None, "none"):
        raise InputError(f"--compare {compare!r}: only onnxruntime is available on this target")
    # at 1 thread a run's CPU time is its latency had nothing else wanted the core; at more,
    # it would add up the threads (and the peer's spinning ones), so it is not kept
    cpu: list[list[float]] | None = [] if (threads or cores) == 1 else None
    times = interleaved(fns, runs, warmup, cpu=cpu)
    cpu_times = cpu or [None] * len(fns)
    result = BenchResult(path.stem, threads or cores, Timing.of(times[0], cpu_times[0]),
                         compile_seconds=compiled.compile_seconds)
    if peer is not None:
        result.peer, result.peer_name = Timing.of(times[1], cpu_times[1]), "onnxruntime"
        result.matches = ort_match(path, model.run(feeds), peer.run(None, feeds))
    if profile:
        from deepc.runtime.profile import profile_kernels

        result.profile = profile_kernels(model, compiled, feeds)
    if trace:
        result.trace = trace_runs(model, compiled, feeds, runs, warmup)
    return result


def batch_shapes(path: Path, batch: int, target: Any,
                 compare: str | None) -> dict[str, tuple[int, ...]]:
    """The first input's shape with its leading dimension replaced by `batch`. A model that
    fixes another batch compiles at `batch` (Reshape targets follow, with a notice), but
    onnxruntime refuses it, so on CPU targets that compare with it that is an input error."""
    from deepc.frontends.onnx import DEFAULT_DIM, declared_inputs
    from deepc.target import load_target

    name, dims = next(iter(declared_inputs(path).items()))
    if not dims:
        raise InputError(f"--batch {batch}: {path.name}'s input {name!r} is a scalar; it has "
                         "no batch dimension to replace")
    fixed = dims[0]
    if fixed is not None and fixed != batch:
        if compare == "onnxruntime" and load_target(target).kind != "cuda":
            raise InputError(
                f"--batch {batch}: {path.name} fixes the batch of input {name!r} at {fixed}, "
                f"so onnxruntime cannot run it at {batch} to compare — use --compare none to "
                "time deepc alone, or export the model with a symbolic batch dimension")
        warnings.warn(DeepcNotice(f"--batch {batch}: {path.name} fixes its batch at {fixed}; "
                                  f"deepc compiles it for {batch}"), stacklevel=2)
    return {name: (batch, *(d or DEFAULT_DIM for d in dims[1:]))}


def _bench_self_timed(path: Path, compiled: Any, model: Any, feeds: dict[str, Any],
                      compare: str | None, runs: int, warmup: int,
                      per_kernel: bool) -> BenchResult:
    """A bundle run by a process of its own (an emulator for another architecture, Node for
    wasm), timed through Model.time_runs: that process times each run, its start-up left
    out. No onnxruntime here is timed beside it (emulated times are not the device's, and
    Node is another engine: onnxruntime-web is wasm's peer); onnxruntime only checks the
    outputs."""
    where = f"under `{model.emulator}`" if model.emulated else "in its own process"
    if per_kernel:
        raise InputError(f"--profile and --trace time kernels in-process: they need a bundle"
                         f" for this machine, not one run {where} — compile with --target host")
    if compare not in (None, "none", "onnxruntime"):
        raise InputError(f"--compare {compare!r}: a bundle run {where} checks its outputs"
                         " against onnxruntime, or none (wasm: --compare onnxruntime-web)")
    times = model.time_runs(feeds, runs=runs, warmup=warmup)
    result = BenchResult(path.stem, model.num_threads, Timing.of(list(times.seconds)),
                         compile_seconds=compiled.compile_seconds, emulated=times.emulated,
                         emulator=times.emulator, estimated=times.estimated)
    if compare == "onnxruntime":
        result.peer_name = "onnxruntime"  # untimed: onnxruntime_ms stays null
        session = onnxruntime_session(path, os.cpu_count() or 1)
        result.matches = ort_match(path, model.run(feeds), session.run(None, feeds))
    return result


def _bench_remote(path: Path, compiled: Any, remote: Any, feeds: dict[str, Any],
                  compare: str | None, runs: int, warmup: int, threads: int,
                  per_kernel: bool) -> BenchResult:
    """The board times the bundle (deepc.rpc); onnxruntime, here, only checks its outputs."""
    import tempfile

    from deepc.errors import DeepcError

    if per_kernel or compare not in (None, "none", "onnxruntime"):
        raise DeepcError("--remote benches time the whole model on the board: no --profile or"
                         " --trace, and --compare onnxruntime (outputs checked here) or none")
    with tempfile.TemporaryDirectory(prefix="deepc-bench-") as tmp, \
            remote.client(compiled.target.name) as client:
        bundle = compiled.save(Path(tmp) / "model.tar")
        times = client.time(bundle, feeds, runs=runs, warmup=warmup, threads=threads)
        outputs = client.run(bundle, feeds, threads) if compare == "onnxruntime" else None
    result = BenchResult(path.stem, times.threads, Timing.of(list(times.seconds)),
                         compile_seconds=compiled.compile_seconds, emulated=times.emulated,
                         emulator=times.emulator)
    if outputs is not None:
        result.peer_name = "onnxruntime"  # untimed: its times here say nothing of the board
        session = onnxruntime_session(path, os.cpu_count() or 1)
        result.matches = ort_match(path, outputs, session.run(None, feeds))
    return result


def _bench_ort_web(path: Path, compiled: Any, model: Any, feeds: dict[str, Any], runs: int,
                   warmup: int) -> BenchResult:
    """A wasm bundle and onnxruntime-web (wasm SIMD, one thread) on the same inputs,
    interleaved in one Node process (runtime/wasm/driver.mjs)."""
    from deepc.runtime.wasm_model import WasmModel

    if not isinstance(model, WasmModel):
        raise InputError("--compare onnxruntime-web times wasm bundles: compile with"
                         " --target wasm32-simd")
    ours, theirs, outs, peer_outs = model.time_with_peer(feeds, path, runs, warmup)
    result = BenchResult(path.stem, model.num_threads, Timing.of(ours), Timing.of(theirs),
                         "onnxruntime-web", compiled.compile_seconds)
    result.matches = outputs_match(outs, peer_outs)
    return result


def _bench_cuda(path: Path, compiled: Any, model: Any, feeds: dict[str, Any],
                compare: str | None, runs: int, warmup: int, allow_tf32: bool) -> BenchResult:
    """deepc's kernels against torch on the GPU (inputs on the device for both); outputs are
    checked against onnxruntime on the CPU where the batch is the file's own."""
    from deepc.runtime.cuda_bench import device_runner, torch_peers

    fns: list[Callable[[], Any]] = [device_runner(model, feeds)]
    peers: dict[str, Callable[[], Any]] = {}
    if compare in ("torch", "torch-eager"):
        shape = compiled.graph.types[compiled.graph.inputs[0]].shape
        peers = torch_peers(path.stem, shape, allow_tf32, with_compile=compare == "torch")
    elif compare not in (None, "none", "onnxruntime"):
        raise InputError(f"--compare {compare!r}: CUDA targets compare with torch or none")
    times = interleaved(fns + list(peers.values()), runs, warmup, settle_s=0)
    result = BenchResult(path.stem, 1, Timing.of(times[0]),
                         compile_seconds=compiled.compile_seconds)
    if peers:
        result.peer, result.peer_name = Timing.of(times[1]), "torch"
        result.extra = {name: round(Timing.of(t).median_ms, 4)
                        for name, t in zip(peers, times[1:])}
    try:
        theirs = ort_outputs(onnxruntime_session(path, os.cpu_count() or 1), feeds)
        result.matches = outputs_match(model.run(feeds), theirs, *tolerances(allow_tf32, theirs))
    except Exception:  # onnxruntime refuses these inputs: left unchecked
        result.matches = None
    return result


def tolerances(tf32: bool, reference: list[Any]) -> tuple[float, float]:
    """(rtol, atol) against a strict fp32 reference: 1e-3 and 1e-4; with TF32 products, rtol
    1e-2 and an atol of 1e-3 of the reference's largest magnitude (TF32 keeps 10 mantissa
    bits, so an output near zero carries the rounding of the larger terms it sums)."""
    if not tf32:
        return 1e-3, 1e-4
    scale = max((float(np.abs(r).max()) for r in reference if np.size(r)), default=1.0)
    return 1e-2, 1e-3 * max(scale, 1.0)


def outputs_match(ours: dict[str, Any], theirs: list[Any], rtol: float = 1e-3,
                  atol: float = 1e-4, units: list[float | None] | None = None) -> bool:
    """deepc's outputs (by name, in graph order) against the peer's (in order); an output
    with a quantisation unit (`units`, frontends.output_units) matches within one unit."""
    units = units or [None] * len(theirs)
    return all(np.allclose(a, b, rtol=rtol, atol=atol) if unit is None
               else float(np.abs(np.asarray(a, np.float64) - b).max(initial=0)) <= unit * 1.0001
               for a, b, unit in zip(ours.values(), theirs, units))


def ort_match(path: Path, ours: dict[str, Any], theirs: list[Any]) -> bool:
    """deepc's outputs against onnxruntime's on the model at `path`: floats at rtol 1e-3 /
    atol 1e-4, dequantised outputs of a quantised model within one unit of their scale."""
    from deepc.frontends.output_units import output_units

    return outputs_match(ours, theirs, units=output_units(path))


def ort_outputs(session: Any, feeds: dict[str, Any]) -> list[Any]:
    """onnxruntime's outputs; where the file fixes the batch and `feeds` replaced it, one
    sample at a time, concatenated along the batch axis."""
    try:
        return list(session.run(None, feeds))
    except Exception:
        batch = {v.shape[0] for v in feeds.values()}
        if len(batch) != 1:
            raise
        runs = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()})
                for i in range(batch.pop())]
        return [np.concatenate(outs) for outs in zip(*runs)]


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")

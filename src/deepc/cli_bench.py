"""`deepc bench`: the verb, and how it presents results (rich tables and lines)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from deepc.cli_common import (
    EXIT_EPILOG,
    console,
    device_option,
    fail,
    handle_errors,
    note,
    opt_option,
    print_table,
    stage_progress,
    tuning_log_option,
)
from deepc.cli_rpc import remote_options


@click.command("bench", epilog=EXIT_EPILOG)
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--threads", "threads", multiple=True, type=int, default=(0,), show_default=True,
              help="Threads (0 = all cores). Repeat to bench several settings.")
@click.option("--compare", default="onnxruntime", show_default=True,
              type=click.Choice(["onnxruntime", "onnxruntime-web", "torch", "torch-eager",
                                 "none"]),
              help="Peer to time alongside (onnxruntime; torch on CUDA targets: eager and"
                   " torch.compile, or torch-eager alone; onnxruntime-web on wasm targets, in"
                   " one Node process; or none).")
@click.option("--batch", default=0, type=click.IntRange(min=0),
              help="Replace the first input's batch dimension (0: the model's own).")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: let the torch peer use TF32 (its defaults); strict fp32 otherwise.")
@click.option("--runs", default=50, show_default=True, help="Timed runs of each.")
@click.option("--warmup", default=5, show_default=True, help="Untimed runs first.")
@opt_option(3)
@click.option("--profile", is_flag=True, help="Per-kernel time share and GFLOP/s.")
@click.option("--top", default=25, show_default=True, metavar="N",
              help="Kernels shown by --profile (the slowest first).")
@click.option("--trace", "trace_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the kernels of --runs more runs as a Chrome trace (JSON for Perfetto"
                   " or chrome://tracing).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run.")
@click.option("--matmul", type=int, default=None, metavar="N",
              help="Also time an NxNxN float32 matmul against numpy's BLAS.")
@device_option
@remote_options
@handle_errors
@tuning_log_option
def bench_cmd(models: tuple[Path, ...], target: str, threads: tuple[int, ...], compare: str,
              batch: int, allow_tf32: bool, runs: int, warmup: int, opt_level: int,
              profile: bool, top: int, trace_path: Path | None, as_json: bool,
              matmul: int | None, remote: Any,
              tuned: Callable[..., dict[str, Any]] | None) -> None:
    """Time compiled models against onnxruntime, side by side in one process.

    With --remote or --tracker, the board times each model (compiled here for --target) and
    onnxruntime here only checks its outputs.
    """
    from deepc.bench import bench_model
    from deepc.bench_matmul import bench_matmul

    if not models and matmul is None:
        fail("name at least one MODEL, or --matmul N", 2)
    if matmul is not None and remote is not None:
        fail("--matmul times numpy here: it cannot run --remote", 2)
    if trace_path is not None and not trace_path.parent.is_dir():
        fail(f"--trace {trace_path}: the folder {trace_path.parent} does not exist", 2)
    if matmul is not None:
        for n in threads:
            mm = bench_matmul(matmul, threads=n, target=target)
            if as_json:
                click.echo(json.dumps(mm))
            else:
                console.print(matmul_line(mm), soft_wrap=True)
        if not models:
            return

    results = []
    with stage_progress("bench") as progress:
        for n in threads:
            for model in models:
                step = f"{model.name}, {n or 'all'} thread{'s' if n != 1 else ''}"
                progress(step, -1, 1)
                results.append(bench_model(model, target, threads=n, compare=compare,
                                           runs=runs, warmup=warmup, profile=profile,
                                           opt_level=opt_level, batch=batch,
                                           allow_tf32=allow_tf32, remote=remote,
                                           tuned=tuned(n or os.cpu_count()) if tuned
                                           else None, trace=trace_path is not None))
                progress(step, 0, 1)
    if trace_path is not None:
        write_trace(trace_path, [r.trace for r in results if r.trace is not None])
    if as_json:
        for r in results:
            click.echo(json.dumps(r.to_dict()))
        return
    print_table(results_table(results, compare, target, runs))
    for line in peer_lines(results):
        console.print(line, soft_wrap=True)
    if profile:
        for r in results:
            print_table(profile_table(r, top))


def write_trace(path: Path, traced: list[Any]) -> None:
    """The Chrome trace of every benched model, in one file."""
    from deepc.report.trace import chrome_trace

    try:
        path.write_text(json.dumps(chrome_trace(traced)))
    except OSError as e:
        fail(f"cannot write the trace to {path}: {e.strerror}", 1)
    note(f"trace of {len(traced)} model(s) written to {path}: open it in Perfetto")


def matmul_line(mm: dict[str, Any]) -> str:
    return (f"matmul {mm['n']}^3, {mm['threads'] or 'all'} thread(s): deepc "
            f"{mm['deepc_gflops']} GFLOP/s, numpy {mm['numpy_gflops']} GFLOP/s "
            f"({mm['fraction_of_numpy']:.0%}), match {mm['outputs_match']}")


def results_table(results: list[Any], compare: str, target: str, runs: int) -> Table:
    """One row per (model, threads), the peer's time and the ratio, a geomean per thread count;
    with no peer (--compare none, emulated rows) deepc's columns alone."""
    from deepc.bench import geomean  # numpy and friends only when a bench is printed

    peer = next((r.peer_name for r in results if r.peer is not None), None)
    table = Table(title=f"deepc vs {peer} on {target} (median of {runs} interleaved runs)",
                  title_justify="left", caption=emulated_caption(results),
                  caption_justify="left")
    if peer is None:
        table.title = f"deepc on {target} (median of {runs} runs)"
    if all(r.emulated for r in results):
        table.title = f"deepc on {target}, emulated (median of {runs} runs)"
    if all(r.estimated for r in results):
        table.title = f"deepc on {target}, estimated latency"
    checked = any(r.matches is not None for r in results)
    cpu = any(r.cpu_ratio is not None for r in results)
    ratio = f"deepc/{peer}"
    cols = ["model", "threads", "deepc ms", "p90", *([f"{peer} ms", ratio] if peer else []),
            *(["cpu ratio"] if cpu else []), *(["match"] if checked else [])]
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        row = [r.model, str(r.threads), f"{r.deepc.median_ms:.2f}", f"{r.deepc.p90_ms:.2f}"]
        if peer:
            row += ["-" if r.peer is None else f"{r.peer.median_ms:.2f}",
                    "-" if r.ratio is None else f"{r.ratio:.2f}"]
        if cpu:
            row.append("-" if r.cpu_ratio is None else f"{r.cpu_ratio:.2f}")
        table.add_row(*row, *([_match(r.matches)] if checked else []))
    for n in sorted({r.threads for r in results}):
        ratios = [r.ratio for r in results if r.threads == n and r.ratio is not None]
        cpu_ratios = [r.cpu_ratio for r in results if r.threads == n and r.cpu_ratio is not None]
        if len(ratios) > 1:
            table.add_row("geomean", str(n), "", "", "", f"{geomean(ratios):.2f}",
                          *([f"{geomean(cpu_ratios):.2f}" if cpu_ratios else ""] if cpu else []),
                          *([""] if checked else []))
    if peer:
        note = f"{ratio}: deepc's median time over {peer}'s; below 1 deepc is faster"
        if cpu:
            note += ("\ncpu ratio: the same of the CPU time per run (1 thread), which leaves"
                     " out time the machine's other work kept a run off its core")
        table.caption = "\n".join(filter(None, [note, table.caption]))
    return table


def _match(matches: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[matches]


def peer_lines(results: list[Any]) -> Iterator[str]:
    """A line per model timed against several peers (torch eager and torch.compile on CUDA)."""
    for r in results:
        if r.extra:
            yield f"{r.model}: deepc {r.deepc.median_ms:.3f} ms; " + "; ".join(
                f"{name} {ms:.3f} ms (deepc/{name} {r.deepc.median_ms / ms:.2f})"
                for name, ms in r.extra.items())


def profile_table(result: Any, top: int = 25) -> Table:
    """The `top` kernels of one model by time: ops, ms, share and achieved GFLOP/s."""
    total = len(result.profile)
    shown = f"showing {top} of {total} kernels (--top N for more)" if total > top else \
        f"all {total} kernels"
    prof = Table(title=f"{result.model}: kernels by time, {shown}", title_justify="left")
    launches = any("stages" in row for row in result.profile)  # CUDA: ms and mapping each
    for col in ("kernel", "ops", "ms", "share", "GFLOP/s", *(["launches"] if launches else [])):
        prof.add_column(col)
    for row in sorted(result.profile, key=lambda x: -x["ms"])[:top]:
        stages = "; ".join(f"{s['ms']:.3f} {s['note'] or 'per-thread'}"
                           for s in row.get("stages", []))
        prof.add_row(row["kernel"], ",".join(row["ops"]), f"{row['ms']:.3f}",
                     f"{row['share']:.1%}", f"{row['gflops']:.1f}",
                     *([stages] if launches else []))
    return prof


def emulated_caption(results: list[Any]) -> str | None:
    """The warning under a bench table with emulated rows: their times are not the device's."""
    estimates = sorted({r.emulator for r in results if r.estimated})
    emulators = sorted({r.emulator for r in results if r.emulated and not r.estimated})
    lines = [f"ESTIMATE: deepc ms is {e}, not a measurement (outputs checked by C simulation)"
             for e in estimates]
    if not emulators:
        return "\n".join(lines) or None
    how = ", ".join(f"`{e}`" for e in emulators)
    return "\n".join([*lines, f"EMULATED: timed under {how} on this machine, not on the device"
                      " — these times show the code runs, not how fast it runs there; no peer"
                      " is timed against them"])

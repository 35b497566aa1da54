"""The `deepc` command: a thin click + rich layer over the library; every verb is a call."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from deepc.cli_bench import (
    emulated_caption as emulated_caption,  # re-exported: part of the CLI's surface
)
from deepc.cli_bench import (
    matmul_line,
    peer_lines,
    profile_table,
    results_table,
)
from deepc.errors import DeepcError
from deepc.version import __version__

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeepcError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("DEEPC_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (a deepc bug: rerun with "
                 "DEEPC_DEBUG=1 for a traceback and report it)", 70)

    return wrapper


def parse_shapes(specs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    from deepc.frontends import parse_input_shape

    return dict(parse_input_shape(s) for s in specs)


OPT_LEVEL_HELP = ("Graph optimisation level: 0 none, 1 constant folding and dead-code removal,"
                  " 2 also simplification, layout and fusion, 3 the same as 2 today. Kernel"
                  " schedules do not depend on it.")


def opt_level_option(default: int | None = 2, extra: str = "") -> Callable[..., Any]:
    """-O, meaning the same in every verb."""
    return click.option("-O", "opt_level", type=click.IntRange(0, 3), default=default,
                        show_default=default is not None,
                        help=OPT_LEVEL_HELP + (f" {extra}" if extra else ""))


def pass_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--disable-pass, --print-after and --print-pass-times (compile and inspect-ir)."""
    fn = click.option("--print-pass-times", "pass_times", is_flag=True,
                      help="Print a table of the time each graph pass took.")(fn)
    fn = click.option("--print-after", "print_after", multiple=True, metavar="PASS",
                      help="Print the graph IR after this pass (also: DEEPC_PRINT_AFTER="
                           "a,b). Repeatable.")(fn)
    return click.option("--disable-pass", "disabled", multiple=True, metavar="PASS",
                        help="Leave this pass out of the -O pipeline. Repeatable.")(fn)


def pass_context(opt_level: int, disabled: tuple[str, ...], print_after: tuple[str, ...]) -> Any:
    """The pass options as a PassContext; an unknown pass name is a one-line error."""
    from deepc.passes import PIPELINES, PassContext, check_pass_names

    ctx = PassContext(opt_level, disabled=frozenset(disabled),
                      print_after=frozenset(print_after))
    try:
        check_pass_names([*ctx.disabled, *ctx.print_after])
    except DeepcError as exc:
        fail(str(exc), 2)
    for name in sorted(ctx.print_after - set(PIPELINES[opt_level])):
        err_console.print(f"note: pass {name} is not part of -O{opt_level}: nothing to print "
                          "after it", highlight=False)
    return ctx


def report_passes(ctx: Any, out: Console, pass_times: bool) -> None:
    """The graph dumps collected by --print-after, then the pass-times table."""
    for name, text in ctx.dumps:
        out.rule(f"[bold]graph IR after {name}")
        out.print(text, highlight=False, markup=False, soft_wrap=True)
    if pass_times:
        table = Table()
        table.add_column(f"pass (-O{ctx.opt_level})")
        table.add_column("ms", justify="right")
        for name, seconds in ctx.times:
            table.add_row(name, f"{seconds * 1e3:.2f}")
        table.add_row("total", f"{sum(s for _, s in ctx.times) * 1e3:.2f}", style="bold")
        out.print(table)


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME:1x3x224x224",
    help="Fix an input's shape (symbolic dimensions default to 1). Repeatable.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="deepc")
def main() -> None:
    """deepc — compile ONNX models into small, fast, self-contained bundles."""


@main.command("inspect-ir")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--stage", type=click.Choice(["graph", "fused", "loop", "schedule", "source",
                                           "asm"]),
              default="graph", show_default=True,
              help="graph IR, fused groups, scheduled loop IR, schedule records (knobs and"
                   " steps per kernel), the kernels' source (LLVM IR or CUDA C), or assembly.")
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--kernel", "-k", default=None,
              help="Only this kernel (fused/loop/schedule/source/asm).")
@opt_level_option(None, "[default: 2; --stage graph shows the imported graph unless -O is"
                       " given]")
@pass_options
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--no-constants", is_flag=True, help="Leave constants out of the text form.")
@handle_errors
def inspect_ir(model: Path, stage: str, target: str, kernel: str | None, opt_level: int | None,
               disabled: tuple[str, ...], print_after: tuple[str, ...], pass_times: bool,
               input_shapes: tuple[str, ...], as_json: bool, no_constants: bool) -> None:
    """Print a model's IR at one level of the stage chain.

    `--stage graph` shows a summary (ops, parameters, FLOPs) and the canonical graph text,
    after the -O pipeline when -O or a pass option is given; `loop`, `source` and `asm`
    compile first and show each kernel.
    """
    from deepc.frontends import load
    from deepc.ir.text import graph_to_dict, graph_to_text
    from deepc.passes.summary import summarize

    graph = load(model, parse_shapes(input_shapes))
    ctx = pass_context(opt_level if opt_level is not None else 2, disabled, print_after)
    if stage != "graph":
        from deepc.compiler.inspect import kernel_texts

        texts = kernel_texts(graph, target, stage, opt_level=ctx.opt_level, kernel=kernel,
                             pass_context=ctx)
        report_passes(ctx, err_console if as_json else console, pass_times)
        if as_json:
            click.echo(json.dumps(texts, indent=1))
            return
        for name, text in texts.items():
            console.rule(f"[bold]{name}")
            console.print(text, highlight=False, markup=False, soft_wrap=True)
        return
    if opt_level is not None or disabled or print_after or pass_times:
        from deepc.passes import run_pipeline
        from deepc.target import load_target

        ctx.target = load_target(target)
        graph = run_pipeline(graph, ctx.opt_level, ctx)
    report_passes(ctx, err_console if as_json else console, pass_times)
    summary = summarize(graph)
    if as_json:
        click.echo(json.dumps({"summary": summary.to_dict(), "graph": graph_to_dict(graph)},
                              indent=1))
        return
    console.print(summary_table(summary))
    console.print(graph_to_text(graph, constants=not no_constants), highlight=False,
                  markup=False, soft_wrap=True)


def summary_table(summary: Any) -> Table:
    table = Table(title=f"{summary.name}: {summary.nodes} nodes, "
                  f"{summary.param_count:,} parameters ({summary.param_bytes / 2**20:.2f} MiB), "
                  f"{summary.flops / 1e9:.3f} GFLOPs", title_justify="left")
    table.add_column("op")
    table.add_column("count", justify="right")
    table.add_column("GFLOPs", justify="right")
    for op, count in summary.op_counts.items():
        table.add_row(op, str(count), f"{summary.flops_by_op.get(op, 0) / 1e9:.4f}")
    for name, ty in summary.inputs.items():
        table.caption = (table.caption or "") + f"input {name}: {ty}  "
    for name, ty in summary.outputs.items():
        table.caption = (table.caption or "") + f"output {name}: {ty}  "
    return table


def compile_progress() -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<10}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console,
        transient=True, disable=not err_console.is_terminal)


@main.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Bundle to write (a .tar).")
@opt_level_option()
@pass_options
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print compile statistics as JSON.")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: fp32 matrix products on TF32 tensor cores where the target has them.")
@handle_errors
def compile_cmd(model: Path, target: str, output: Path, opt_level: int,
                disabled: tuple[str, ...], print_after: tuple[str, ...], pass_times: bool,
                input_shapes: tuple[str, ...], as_json: bool, allow_tf32: bool) -> None:
    """Compile MODEL for a target into one self-contained bundle.

    Graph IR printed by --print-after and the --print-pass-times table go to stderr.
    """
    import deepc

    ctx = pass_context(opt_level, disabled, print_after)

    with compile_progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done + 1, total=total)

        compiled = deepc.compile(model, target, input_shapes=parse_shapes(input_shapes),
                                 opt_level=opt_level, pass_context=ctx, progress=progress,
                                 allow_tf32=allow_tf32 or None)
        compiled.save(output)
    report_passes(ctx, err_console, pass_times)
    stats = compiled.stats()
    if as_json:
        click.echo(json.dumps(stats))
        return
    console.print(f"[green]wrote[/] {output} — {stats['kernels']} kernels, workspace "
                  f"{stats['arena_bytes'] / 2**20:.2f} MiB, params "
                  f"{stats['params_bytes'] / 2**20:.2f} MiB, {stats['compile_seconds']:.2f} s")


@main.command("run")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=FILE.npy",
              help="An input array (.npy). Missing inputs are seeded random.")
@click.option("--output-dir", "-d", type=click.Path(path_type=Path), default=None,
              help="Write one NAME.npy per output here.")
@click.option("--seed", default=0, show_default=True, help="Seed for random inputs.")
@click.option("--threads", default=0, help="Threads (0 = all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of the outputs.")
@handle_errors
def run_cmd(bundle: Path, inputs: tuple[str, ...], output_dir: Path | None, seed: int,
            threads: int, as_json: bool) -> None:
    """Run a compiled bundle on inputs and save its outputs."""
    import numpy as np

    import deepc
    from deepc.runtime.inputs import load_input_files

    model = deepc.load(bundle)
    if model.emulated:
        target_name = model.bundle.target.get("name", "?")
        err_console.print(f"note: {bundle.name} is compiled for {model.bundle.triple}; it runs"
                          f" under the emulator `{model.emulator}` (toolchain.emulator of"
                          f" target {target_name!r}), slowly", highlight=False, soft_wrap=True)
    if threads:
        model.set_num_threads(threads)
    feeds = load_input_files(inputs)
    feeds = {**model.random_inputs(seed), **feeds}
    outputs = model.run(feeds)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name, value in outputs.items():
            np.save(output_dir / f"{safe_filename(name)}.npy", value)
    summary = {name: {"shape": list(v.shape), "dtype": str(v.dtype),
                      "min": float(v.min()) if v.size else None,
                      "max": float(v.max()) if v.size else None}
               for name, v in outputs.items()}
    if as_json:
        click.echo(json.dumps(summary))
        return
    table = Table(title=f"{bundle.name}: outputs", title_justify="left")
    for col in ("output", "shape", "dtype", "min", "max"):
        table.add_column(col)
    for name, s in summary.items():
        table.add_row(name, "x".join(map(str, s["shape"])), s["dtype"], f"{s['min']:.5g}",
                      f"{s['max']:.5g}")
    console.print(table)


def safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@main.command("bench")
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--threads", "threads", multiple=True, type=int, default=(0,), show_default=True,
              help="Threads (0 = all cores). Repeat to bench several settings.")
@click.option("--compare", default="onnxruntime", show_default=True,
              help="Peer to time alongside (onnxruntime; torch on CUDA targets: eager and"
                   " torch.compile, or torch-eager alone; onnxruntime-web on wasm targets,"
                   " in one Node process; or none).")
@click.option("--batch", default=0, help="Replace the first input's batch dimension.")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: let the torch peer use TF32 (its defaults); strict fp32 otherwise.")
@click.option("--runs", default=50, show_default=True, help="Timed runs of each.")
@click.option("--warmup", default=5, show_default=True, help="Untimed runs first.")
@opt_level_option()
@click.option("--profile", is_flag=True, help="Per-kernel time share and GFLOP/s.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run.")
@click.option("--matmul", type=int, default=None, metavar="N",
              help="Also time an NxNxN float32 matmul against numpy's BLAS.")
@handle_errors
def bench_cmd(models: tuple[Path, ...], target: str, threads: tuple[int, ...], compare: str,
              batch: int, allow_tf32: bool, runs: int, warmup: int, opt_level: int,
              profile: bool, as_json: bool, matmul: int | None) -> None:
    """Time compiled models against onnxruntime, side by side in one process."""
    from deepc.bench import bench_matmul, bench_model

    if not models and matmul is None:
        fail("name at least one MODEL, or --matmul N", 2)
    if matmul is not None:
        for n in threads:
            mm = bench_matmul(matmul, threads=n, target=target)
            if as_json:
                click.echo(json.dumps(mm))
            else:
                console.print(matmul_line(mm))
        if not models:
            return

    results = []
    with compile_progress() as bar:
        task = bar.add_task("bench", total=len(models) * len(threads))
        for n in threads:
            for model in models:
                results.append(bench_model(model, target, threads=n, compare=compare,
                                           runs=runs, warmup=warmup, profile=profile,
                                           opt_level=opt_level, batch=batch,
                                           allow_tf32=allow_tf32))
                bar.advance(task)
    if as_json:
        for r in results:
            click.echo(json.dumps(r.to_dict()))
        return
    console.print(results_table(results, compare, target, runs))
    for line in peer_lines(results):
        console.print(line)
    if profile:
        for r in results:
            console.print(profile_table(r))


@main.command("targets")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@handle_errors
def targets(as_json: bool) -> None:
    """List the available compilation targets."""
    from deepc.target import list_targets

    rows = list_targets()
    if as_json:
        click.echo(json.dumps(dict(rows), indent=1))
        return
    table = Table(title="deepc targets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, description in rows:
        table.add_row(name, description)
    console.print(table)


if __name__ == "__main__":
    main()

"""`deepc tune`: a model's kernel schedules searched on the target, with a live display of
tasks, trials, best-so-far and the model's estimated speed-up; --json for a summary."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from deepc.cli_common import (
    EXIT_EPILOG,
    console,
    err_console,
    handle_errors,
    input_shape_option,
    opt_option,
    parse_shapes,
    print_table,
    strict_input_shapes,
)
from deepc.cli_rpc import remote_options

_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_budget(ctx: Any, param: Any, text: str) -> float:
    """--budget: '90s', '10m', '1.5h' or plain seconds (click's usage error otherwise)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: give a duration such as 90s, 10m or 1h")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@click.command("tune", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--budget", default="10m", show_default=True, callback=parse_budget,
              help="Search time in all (90s, 10m, 1h), spread over the model's kernels.")
@click.option("--log", "log", type=click.Path(path_type=Path), required=True,
              help="JSONL file the measurements are appended to; a rerun resumes from it.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="Threads the kernels are timed with.")
@click.option("--seed", default=0, show_default=True, help="Seed of the search.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Tune for this batch size (the first input's leading dimension).")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: search TF32 tensor-core tiles too (as compile/bench --allow-tf32).")
@opt_option(2)
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@remote_options
@handle_errors
def tune_cmd(model: Path, target: str, budget: float, log: Path, threads: int, seed: int,
             batch: int | None, allow_tf32: bool, opt_level: int, input_shapes: tuple[str, ...],
             as_json: bool, remote: Any) -> None:
    """Search MODEL's kernel schedules for TARGET; apply with compile/bench --tuning-log."""
    from deepc.bench import batch_shapes
    from deepc.compiler.tuning import tune_model

    shapes = parse_shapes(input_shapes)
    if batch is not None:  # the shapes bench --batch compiles, so the workloads match
        with _batch_replaced():
            shapes = {**shapes, **batch_shapes(model, batch, target, None)}
    shaping = strict_input_shapes() if batch is None else _batch_replaced()
    with shaping, _display(budget) as progress:
        summary = tune_model(model, target, log=log, budget_s=budget, remote=remote,
                             threads=threads, opt_level=opt_level, input_shapes=shapes,
                             progress=progress, seed=seed, allow_tf32=allow_tf32 or None)
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    print_table(_table(summary))
    console.print(f"{summary.trials} trials in {summary.elapsed:.0f} s; estimated speed-up of"
                  f" the model's kernels {summary.speedup:.3f}x; log {log}", soft_wrap=True)


@contextmanager
def _batch_replaced() -> Iterator[None]:
    """--batch replaces a batch the model fixes, as bench --batch does (quietly)."""
    import warnings

    from deepc.errors import DeepcNotice

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepcNotice)
        yield


@contextmanager
def _display(budget: float) -> Iterator[Callable[[Any, int], None]]:
    """A live bar over the budget when stderr is a terminal; quiet otherwise."""
    if not err_console.is_terminal:
        yield lambda summary, k: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("profiling defaults", total=budget)

    def update(summary: Any, k: int) -> None:
        t = summary.tasks[k]
        best = t.best_cost or t.default_cost or 0.0
        bar.update(task, completed=min(summary.elapsed, budget), description=(
            f"task {k + 1}/{len(summary.tasks)} {t.kernel[:28]:<28} trials {summary.trials:>4}"
            f"  best {best * 1e6:8.1f} us  model {summary.speedup:.3f}x"))

    with bar:
        yield update


def _table(summary: Any) -> Table:
    table = Table(title="deepc tune", title_justify="left")
    for name in ("kernel", "count", "default us", "best us", "speed-up", "trials", "errors"):
        table.add_column(name, justify="left" if name == "kernel" else "right")
    for t in sorted(summary.tasks, key=lambda t: -t.weight):
        best = t.best_cost or t.default_cost
        table.add_row(t.kernel, str(t.count), _us(t.default_cost), _us(best),
                      f"{t.default_cost / best:.2f}x" if best and t.default_cost else "-",
                      str(t.trials), str(t.errors))
    return table


def _us(seconds: float | None) -> str:
    return f"{seconds * 1e6:.1f}" if seconds else "-"

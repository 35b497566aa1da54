"""`deepc compile`: a model into one bundle, the output path checked before any work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deepc.cli_common import (
    EXIT_EPILOG,
    check_writable,
    console,
    err_console,
    handle_errors,
    input_shape_option,
    opt_option,
    parse_shapes,
    pass_context,
    pass_options,
    precision_option,
    report_passes,
    stage_progress,
    strict_input_shapes,
    tuning_log_option,
)


@click.command("compile", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--output", "-o", type=click.Path(path_type=Path), required=True,
              help="Bundle to write (a .tar); written whole or not at all.")
@opt_option(2)
@pass_options
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print compile statistics as JSON.")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: fp32 matrix products on TF32 tensor cores where the target has them.")
@click.option("--static-runner", is_flag=True,
              help="CPU: link bin/run_model fully static with the model inside (musl through"
                   " zig), so it runs on any Linux of the target's architecture.")
@precision_option
@handle_errors
@tuning_log_option
def compile_cmd(model: Path, target: str, output: Path, opt_level: int,
                disabled: tuple[str, ...], print_after: tuple[str, ...], pass_times: bool,
                input_shapes: tuple[str, ...], as_json: bool, allow_tf32: bool,
                precision: str, tuned: Callable[..., dict[str, Any]] | None,
                static_runner: bool) -> None:
    """Compile MODEL for a target into one self-contained bundle.

    Graph IR printed by --print-after and the --print-pass-times table go to stderr.
    """
    import deepc

    check_writable(output)
    ctx = pass_context(opt_level, disabled, print_after)
    compiled: Any
    with strict_input_shapes(), stage_progress(f"compile {model.name}") as progress:
        compiled = deepc.compile(model, target, input_shapes=parse_shapes(input_shapes),
                                 opt_level=opt_level, pass_context=ctx, progress=progress,
                                 allow_tf32=allow_tf32 or None,
                                 tuned=tuned() if tuned else None,
                                 static_runner=static_runner, precision=precision)
        compiled.save(output)
    report_passes(ctx, err_console, pass_times)
    stats = compiled.stats()
    if as_json:
        click.echo(json.dumps(stats))
        return
    console.print(f"[green]wrote[/] {output} — {stats['kernels']} kernels, workspace "
                  f"{stats['arena_bytes'] / 2**20:.2f} MiB, params "
                  f"{stats['params_bytes'] / 2**20:.2f} MiB, {stats['compile_seconds']:.2f} s",
                  soft_wrap=True)

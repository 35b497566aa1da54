"""`deepc inspect-ir`: a model's IR at one level of the stage chain, as text or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from deepc.cli_common import (
    EXIT_EPILOG,
    OPT_HELP,
    console,
    err_console,
    handle_errors,
    input_shape_option,
    parse_shapes,
    pass_context,
    pass_options,
    precision_option,
    print_table,
    report_passes,
    strict_input_shapes,
    tuning_log_option,
)


@click.command("inspect-ir", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--stage", type=click.Choice(["graph", "fused", "loop", "schedule", "source",
                                           "asm", "hls"]),
              default="graph", show_default=True,
              help="graph: the graph IR; fused: the graph after the passes as kernels (fusion "
                   "groups: their ops, master, reads and writes); loop: each kernel's scheduled "
                   "loop IR; schedule: each kernel's schedule record (workload, named knobs, "
                   "steps per launch); source: its LLVM IR (or CUDA C, HLS C++); asm: its "
                   "assembly; hls: an FPGA target's resource and latency estimate per kernel.")
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--kernel", "-k", default=None,
              help="Only this kernel (fused/loop/schedule/source/asm/hls): its name or a unique "
                   "prefix (k003_conv for k003_conv_add_relu).")
@click.option("-O", "opt_level", type=click.IntRange(0, 3), default=None,
              help=f"{OPT_HELP} [default: 2; --stage graph shows the imported graph unless "
                   "-O is given]")
@pass_options
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--no-constants", is_flag=True, help="Leave constants out of the text form.")
@click.option("--allow-tf32", is_flag=True,
              help="CUDA: show the kernels `compile --allow-tf32` builds (TF32 tensor cores).")
@precision_option
@handle_errors
@tuning_log_option
def inspect_ir(model: Path, stage: str, target: str, kernel: str | None, opt_level: int | None,
               disabled: tuple[str, ...], print_after: tuple[str, ...], pass_times: bool,
               input_shapes: tuple[str, ...], as_json: bool, no_constants: bool,
               allow_tf32: bool, precision: str,
               tuned: Callable[..., dict[str, Any]] | None) -> None:
    """Print a model's IR at one level of the stage chain.

    `--stage graph` shows a summary (ops, parameters, FLOPs) and the canonical graph text,
    after the -O pipeline when -O or a pass option is given; `fused` shows the kernels the
    passes form; `loop`, `source` and `asm` compile first and show each kernel, as
    `compile` with the same --allow-tf32 and --tuning-log would build it.
    """
    from deepc.frontends import load
    from deepc.ir.text import graph_to_dict, graph_to_text
    from deepc.passes.summary import summarize

    with strict_input_shapes():
        graph = load(model, parse_shapes(input_shapes))
    ctx = pass_context(opt_level if opt_level is not None else 2, disabled, print_after)
    if stage != "graph":
        from deepc.compiler.inspect import kernel_texts

        texts = kernel_texts(graph, target, stage, opt_level=ctx.opt_level, kernel=kernel,
                             pass_context=ctx, precision=precision,
                             allow_tf32=allow_tf32 or None,
                             tuned=tuned() if tuned else None)
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
    print_table(summary_table(summary))
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

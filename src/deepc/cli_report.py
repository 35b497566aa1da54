"""`deepc report`: one self-contained HTML page of what the compiler did to a model."""

from __future__ import annotations

from pathlib import Path

import click

from deepc.cli_common import EXIT_EPILOG, fail, handle_errors, note, opt_option, stage_progress


@click.command("report", epilog=EXIT_EPILOG)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", "-t", default="host", show_default=True, help="Target name or file.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              default=Path("report.html"), show_default=True, help="The HTML file to write.")
@click.option("--compare", default="none", show_default=True,
              type=click.Choice(["onnxruntime", "none"]),
              help="Put onnxruntime's own per-node profile beside deepc's kernels.")
@click.option("--runs", default=20, show_default=True, type=click.IntRange(min=1),
              help="Timed runs behind each kernel's median.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0),
              help="Untimed runs first.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="Threads (0 = all cores).")
@opt_option(2)
@handle_errors
def report_cmd(model: Path, target: str, output: Path, compare: str, runs: int, warmup: int,
               threads: int, opt_level: int) -> None:
    """Write an HTML report: the graph as compiled, the memory plan, the kernel profile (where
    the bundle runs on this machine), the target, the passes and the schedules."""
    from deepc.report.collect import collect
    from deepc.report.html import render

    if not output.parent.is_dir():
        fail(f"-o {output}: the folder {output.parent} does not exist", 2)
    with stage_progress("report") as progress:
        progress("compile and time", -1, 1)
        data = collect(model, target, runs=runs, warmup=warmup, compare=compare,
                       threads=threads, opt_level=opt_level)
        page = render(data)
        progress("compile and time", 0, 1)
    try:
        output.write_text(page)
    except OSError as e:
        fail(f"cannot write the report to {output}: {e.strerror}", 1)
    if data.timing_note:
        note(data.timing_note)
    click.echo(f"report: {output}")

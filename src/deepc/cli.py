"""The `deepc` command: a thin click + rich layer over the library; every verb is a call.

Each verb lives in its own cli_*.py module; this one holds the group and `targets`.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from deepc import __version__
from deepc.cli_bench import bench_cmd
from deepc.cli_bench import (
    emulated_caption as emulated_caption,  # re-exported: part of the CLI's surface
)
from deepc.cli_cache import cache
from deepc.cli_common import EXIT_EPILOG, handle_errors, print_table
from deepc.cli_compile import compile_cmd
from deepc.cli_inspect import inspect_ir
from deepc.cli_inspect import summary_table as summary_table  # re-exported for the demo
from deepc.cli_report import report_cmd
from deepc.cli_rpc import rpc
from deepc.cli_run import run_cmd
from deepc.cli_run import safe_filename as safe_filename  # re-exported for the e2e tests
from deepc.cli_tune import tune_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_EPILOG)
@click.version_option(__version__, "--version", prog_name="deepc")
def main() -> None:
    """deepc — compile ONNX models into small, fast, self-contained bundles."""


@main.command("targets", epilog=EXIT_EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@handle_errors
def targets(as_json: bool) -> None:
    """List the available compilation targets, and what `host` detected on this machine."""
    from deepc.target import list_targets, load_target

    rows = dict(list_targets())
    host = load_target("host")
    detected = (f"detected: {host.cpu} ({host.triple}), {host.cores} cores, "
                f"{host.vector_bits}-bit vectors, fma {'yes' if host.fma else 'no'}")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    table = Table(title="deepc targets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, description in rows.items():
        table.add_row(name, f"{description}\n{detected}" if name == "host" else description)
    print_table(table)


for verb in (inspect_ir, compile_cmd, run_cmd, bench_cmd, tune_cmd, rpc, report_cmd, cache):
    main.add_command(verb)


if __name__ == "__main__":
    main()

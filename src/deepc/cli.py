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

from deepc import __version__
from deepc.errors import DeepcError

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


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME:1x3x224x224",
    help="Fix an input's shape (symbolic dimensions default to 1). Repeatable.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="deepc")
def main() -> None:
    """deepc — compile ONNX models into small, fast, self-contained bundles."""


@main.command("inspect-ir")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--stage", type=click.Choice(["graph"]), default="graph", show_default=True,
              help="Which IR level to print.")
@input_shape_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--no-constants", is_flag=True, help="Leave constants out of the text form.")
@handle_errors
def inspect_ir(model: Path, stage: str, input_shapes: tuple[str, ...], as_json: bool,
               no_constants: bool) -> None:
    """Print a model's IR: a summary (ops, parameters, FLOPs) and the canonical text."""
    from deepc.frontends import load
    from deepc.ir.summary import summarize
    from deepc.ir.text import graph_to_dict, graph_to_text

    graph = load(model, parse_shapes(input_shapes))
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

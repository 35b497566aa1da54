"""`deepc cache info|clear`: the bounded cache areas' size, and emptying them."""

from __future__ import annotations

import click
from rich.table import Table

from deepc.cache_evict import AREAS, ENV, clear, max_bytes, usage
from deepc.cli_common import EXIT_EPILOG, handle_errors, note, print_table


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes} B"
    power = min(3, (nbytes.bit_length() - 1) // 10)
    return f"{nbytes / (1 << 10 * power):.1f} {('KiB', 'MiB', 'GiB')[power - 1]}"


@click.group("cache", epilog=EXIT_EPILOG)
def cache() -> None:
    """The deepc cache: extracted bundles and built CUDA kernels, bounded by
    DEEPC_CACHE_MAX_BYTES (least recently used removed first)."""


@cache.command("info", epilog=EXIT_EPILOG)
@handle_errors
def info() -> None:
    """Each bounded area's entries, bytes and path, and the bound."""
    bound = max_bytes()
    areas = usage()
    table = Table(title=f"deepc cache (bound {_size(bound) if bound else 'none'}, {ENV})",
                  title_justify="left")
    for column, justify in (("area", "left"), ("entries", "right"), ("bytes", "right"),
                            ("path", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for a in areas:
        table.add_row(a.area, str(a.entries), _size(a.nbytes), str(a.path))
    table.add_row("total", str(sum(a.entries for a in areas)),
                  _size(sum(a.nbytes for a in areas)), "", style="bold")
    print_table(table)


@cache.command("clear", epilog=EXIT_EPILOG)
@click.option("--area", type=click.Choice([*AREAS, "all"]), default="all", show_default=True,
              help="Which area to empty.")
@handle_errors
def clear_cmd(area: str) -> None:
    """Remove the entries of an area (or all); entries a running process uses stay."""
    removed, kept = clear(AREAS if area == "all" else (area,))
    click.echo(f"removed {removed} entries")
    if kept:
        note(f"{kept} entries are in use by a running process and were kept")

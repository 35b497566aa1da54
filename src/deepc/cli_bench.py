"""How `deepc bench` presents its results: rich tables and lines, built from BenchResults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rich.table import Table


def matmul_line(mm: dict[str, Any]) -> str:
    return (f"matmul {mm['n']}^3, {mm['threads'] or 'all'} thread(s): deepc "
            f"{mm['deepc_gflops']} GFLOP/s, numpy {mm['numpy_gflops']} GFLOP/s "
            f"({mm['fraction_of_numpy']:.0%}), match {mm['outputs_match']}")


def results_table(results: list[Any], compare: str, target: str, runs: int) -> Table:
    """One row per (model, threads), the peer's time and the ratio, a geomean per thread count."""
    from deepc.bench import geomean  # numpy and friends only when a bench is printed

    table = Table(title=f"deepc vs {compare} on {target} (median of {runs} interleaved runs)",
                  title_justify="left", caption=emulated_caption(results),
                  caption_justify="left")
    if all(r.emulated for r in results):
        table.title = f"deepc on {target}, emulated (median of {runs} runs)"
    for col in ("model", "threads", "deepc ms", "p90", f"{compare} ms", "ratio", "match"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        peer = "-" if r.peer is None else f"{r.peer.median_ms:.2f}"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        table.add_row(r.model, str(r.threads), f"{r.deepc.median_ms:.2f}",
                      f"{r.deepc.p90_ms:.2f}", peer, ratio, str(r.matches))
    for n in sorted({r.threads for r in results}):
        ratios = [r.ratio for r in results if r.threads == n and r.ratio is not None]
        if len(ratios) > 1:
            table.add_row("geomean", str(n), "", "", "", f"{geomean(ratios):.2f}", "")
    return table


def peer_lines(results: list[Any]) -> Iterator[str]:
    """A line per model timed against several peers (torch eager and torch.compile on CUDA)."""
    for r in results:
        if r.extra:
            yield f"{r.model}: deepc {r.deepc.median_ms:.3f} ms; " + "; ".join(
                f"{name} {ms:.3f} ms (deepc/{name} {r.deepc.median_ms / ms:.2f})"
                for name, ms in r.extra.items())


def profile_table(result: Any, top: int = 25) -> Table:
    """The `top` kernels of one model by time: ops, ms, share and achieved GFLOP/s."""
    prof = Table(title=f"{result.model}: kernels by time", title_justify="left")
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
    emulators = sorted({r.emulator for r in results if r.emulated})
    if not emulators:
        return None
    how = ", ".join(f"`{e}`" for e in emulators)
    return (f"EMULATED: timed under {how} on this machine, not on the device — these times"
            " show the code runs, not how fast it runs there; no peer is timed against them")

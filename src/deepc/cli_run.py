"""`deepc run`: a bundle on given or seeded inputs; a table of the outputs, saved on request."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from deepc.cli_common import EXIT_EPILOG, device_option, handle_errors, note, print_table
from deepc.cli_rpc import remote_options
from deepc.errors import InputError

if TYPE_CHECKING:
    import numpy as np

SHOWN_VALUES = 4  # leading values of each output in the table


@click.command("run", epilog=EXIT_EPILOG)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--input", "-i", "inputs", multiple=True, metavar="NAME=FILE.npy",
              help="An input array (.npy). Missing inputs are seeded random.")
@click.option("--output-dir", "-d", type=click.Path(path_type=Path), default=None,
              help="Write one NAME.npy per output here (without it nothing is saved).")
@click.option("--seed", default=0, show_default=True, help="Seed for random inputs.")
@click.option("--threads", default=0, help="Threads (0 = all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of the outputs.")
@device_option
@remote_options
@handle_errors
def run_cmd(bundle: Path, inputs: tuple[str, ...], output_dir: Path | None, seed: int,
            threads: int, as_json: bool, remote: Any) -> None:
    """Run a compiled bundle on inputs (here, or on a remote board); show its outputs and
    save them with --output-dir."""
    from deepc.runtime.bundle import read_bundle
    from deepc.runtime.inputs import load_input_files

    if output_dir is not None:
        make_output_dir(output_dir)
    feeds = load_input_files(inputs)
    if remote is not None:
        random = [s.name for s in read_bundle(bundle).inputs if s.name not in feeds]
        outputs = remote.run(bundle, feeds, seed, threads)
    else:
        outputs, random = run_here(bundle, feeds, seed, threads)
    saved = save_outputs(outputs, output_dir) if output_dir is not None else {}
    summary = {name: {"shape": list(v.shape), "dtype": str(v.dtype),
                      "min": float(v.min()) if v.size else None,
                      "max": float(v.max()) if v.size else None,
                      "first": v.reshape(-1)[:SHOWN_VALUES].tolist(),
                      "file": str(saved[name]) if name in saved else None}
               for name, v in outputs.items()}
    if as_json:
        click.echo(json.dumps(summary))
        return
    if random:
        note(f"random inputs (seed {seed}) for {', '.join(random)}; give --input NAME=FILE.npy "
             "for real data")
    print_table(outputs_table(bundle.name, summary))
    if output_dir is None:
        note("outputs were not saved: add --output-dir DIR to write one NAME.npy per output")
    else:
        note(f"wrote {len(saved)} output file(s) to {output_dir}")


def run_here(bundle: Path, feeds: dict[str, Any], seed: int,
             threads: int) -> tuple[dict[str, Any], list[str]]:
    """The bundle run in this process (or under its target's emulator): its outputs, and the
    inputs that were seeded random."""
    import deepc

    model = deepc.load(bundle)
    if model.run_note:
        note(model.run_note)
    elif model.emulated:
        target_name = model.bundle.target.get("name", "?")
        note(f"{bundle.name} is compiled for {model.bundle.triple}; it runs under the emulator "
             f"`{model.emulator}` (toolchain.emulator of target {target_name!r}), slowly")
    if threads:
        model.set_num_threads(threads)
    random = [s.name for s in model.inputs if s.name not in feeds]
    return model.run({**model.random_inputs(seed), **feeds}), random


def outputs_table(title: str, summary: dict[str, dict[str, Any]]) -> Table:
    table = Table(title=f"{title}: outputs", title_justify="left")
    for col in ("output", "shape", "dtype", "min", "max", "first values", "saved as"):
        table.add_column(col)
    for name, s in summary.items():
        values = ", ".join(f"{v:.5g}" if isinstance(v, float) else str(v) for v in s["first"])
        table.add_row(name, "x".join(map(str, s["shape"])) or "scalar", s["dtype"],
                      _num(s["min"]), _num(s["max"]), values, s["file"] or "-")
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.5g}"


def save_outputs(outputs: dict[str, np.ndarray], output_dir: Path) -> dict[str, Path]:
    """One NAME.npy per output (names made file-safe), each written whole or not at all."""
    import numpy as np

    from deepc.cache import atomic_output

    saved = {}
    for name, value in outputs.items():
        path = output_dir / f"{safe_filename(name)}.npy"
        with atomic_output(path) as tmp, tmp.open("wb") as f:
            np.save(f, value)
        saved[name] = path
    return saved


def make_output_dir(path: Path) -> None:
    """Create --output-dir before running, so a path that cannot be written is exit 2."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output-dir {path}: cannot be created ({exc.strerror or exc}) — "
                         "choose another folder") from None
    if not os.access(path, os.W_OK):
        raise InputError(f"--output-dir {path}: not writable — choose another folder")


def safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

"""What every `deepc` verb shares: consoles, one-line errors and exit codes, notes, progress,
tables that never cut names, and the common options."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deepc.errors import EXIT_CODES, DeepcError, DeepcNotice, FixedDimReplaced, InputError

console = Console()
err_console = Console(stderr=True)

# \b keeps click from re-flowing the table into one paragraph
EXIT_EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code:>2}  {what}"
                                               for code, what in EXIT_CODES.items())
BUG_EXIT = 70
BUG_HINT = " (a deepc bug: rerun with DEEPC_DEBUG=1 for a traceback and report it)"
QUIET_SECONDS = 2.0  # plain progress lines start after this long
OPT_HELP = ("Graph optimisation level, the same in every verb: 0 no graph passes (one kernel "
            "per op); 1 constant folding and dead-code removal; 2 also common subexpressions, "
            "algebraic simplification, target layouts and operator fusion; 3 what 2 does plus "
            "-O3-only passes as they land (today the same passes). Schedules do not depend on "
            "-O. `deepc inspect-ir -O N --print-pass-times` lists the passes.")


def fail(message: str, code: int) -> None:
    """One line on stderr, whatever the message holds (a wrapped tool's newlines, brackets
    that rich would read as markup), then exit with `code`."""
    line = " ".join(message.split())
    err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    sys.exit(code)


def note(message: str) -> None:
    err_console.print(f"note: {message}", highlight=False, soft_wrap=True, markup=False)


def _show_notice(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, DeepcNotice):
        note(str(message))
    # any other library warning stays out of the user's way


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and an exit code, never a traceback;
    library notices (DeepcNotice warnings) become `note:` lines."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", DeepcNotice)
                warnings.showwarning = _show_notice
                return fn(*args, **kwargs)
        except DeepcError as exc:
            if exc.exit_code == BUG_EXIT and os.environ.get("DEEPC_DEBUG"):
                raise
            fail(f"{exc}{BUG_HINT if exc.exit_code == BUG_EXIT else ''}", exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except MemoryError as exc:  # a run-time failure of this machine, not a deepc bug
            fail(f"out of memory: {exc} — use a machine with more memory or a smaller "
                 "input shape", 1)
        except Exception as exc:
            if os.environ.get("DEEPC_DEBUG"):
                raise
            what = ("the model nests too deeply for a recursive walk in deepc"
                    if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}")
            fail(f"internal error: {what}{BUG_HINT}", BUG_EXIT)

    return wrapper


@contextlib.contextmanager
def strict_input_shapes() -> Iterator[None]:
    """--input-shape fixes symbolic dimensions only: replacing a fixed one is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FixedDimReplaced)
        yield


def parse_shapes(specs: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    from deepc.frontends import parse_input_shape

    return dict(parse_input_shape(s) for s in specs)


def check_writable(path: Path) -> None:
    """Fail before a long compile when the output cannot be written where asked: a file is
    made and removed in the nearest existing folder (root passes access() checks on /proc)."""
    import tempfile

    if path.is_dir():
        raise InputError(f"-o {path}: is a directory — name the bundle file, e.g. "
                         f"{path / 'model.tar'}")
    probe = path.absolute().parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".deepc-probe-"):
            pass
    except OSError:
        raise InputError(f"-o {path}: cannot create a file in {probe} — choose another "
                         "output path") from None


def opt_option(default: int | None) -> Callable[..., Any]:
    return click.option("-O", "opt_level", type=click.IntRange(0, 3), default=default,
                        show_default=default is not None, help=OPT_HELP)


def tuning_log_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--tuning-log FILE [--tuning-threads N] (compile, bench): the verb gets `tuned`, a
    function of the runtime thread count (None: --tuning-threads, else the log's only one)
    to the best knobs per workload of a `deepc tune` log; or None without a log."""

    @functools.wraps(fn)
    def wrapper(*args: Any, tuning_log: Path | None, tuning_threads: int | None,
                **kwargs: Any) -> Any:
        tuned = None
        if tuning_log is not None:
            from deepc.target import load_target
            from deepc.tune.log import best_knobs

            target = load_target(kwargs.get("target", "host"))
            best_knobs(tuning_log, target, tuning_threads)  # a bad log fails before any work

            def tuned(threads: int | None = None) -> dict[str, Any]:
                # CPU records depend on the runtime's threads; a GPU decides its own
                cpu = target.backend == "llvm"
                return best_knobs(tuning_log, target, tuning_threads or (threads if cpu else None))
        return fn(*args, tuned=tuned, **kwargs)

    log = click.option("--tuning-log", type=click.Path(path_type=Path), default=None,
                       help="Apply the best schedules of this `deepc tune` log.")
    threads = click.option("--tuning-threads", type=click.IntRange(min=1), default=None,
                           help="Use the log's records timed with N threads (bench: each"
                                " --threads value; compile: the log's only count).")
    return log(threads(wrapper))


def _set_device(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    del ctx, param
    if value:
        from deepc.runtime.opencl_model import DEVICE_ENV

        os.environ[DEVICE_ENV] = value  # read where an OpenCL bundle loads


# the OpenCL device of run and bench (other bundles run where their kind says)
device_option = click.option(
    "--device", callback=_set_device, expose_value=False, metavar="DEVICE",
    help="OpenCL bundles: the device — cpu, gpu, accelerator, all, P:D (platform:device) or"
         " part of its name (also DEEPC_OPENCL_DEVICE; default: the target file's).")


def pass_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--disable-pass, --print-after and --print-pass-times (compile and inspect-ir)."""
    fn = click.option("--print-pass-times", "pass_times", is_flag=True,
                      help="Print a table of the time each graph pass took.")(fn)
    fn = click.option("--print-after", "print_after", multiple=True, metavar="PASS",
                      help="Print the graph IR after this pass (also: DEEPC_PRINT_AFTER="
                           "a,b). Repeatable.")(fn)
    return click.option("--disable-pass", "disabled", multiple=True, metavar="PASS",
                        help="Leave this pass out of the -O pipeline. Repeatable.")(fn)


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME:1x3x224x224",
    help="Set an input's symbolic dimensions (they default to 1, with a note); dimensions the "
         "model fixes must be given as they are. Repeatable.")

precision_option = click.option(
    "--precision", type=click.Choice(["float32", "fixed16"]), default="float32",
    show_default=True, help="FPGA targets: fixed16 computes in ap_fixed<16,N>, N per tensor "
    "from a calibration on seeded random inputs (float32 elsewhere).")


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
        note(f"pass {name} is not part of -O{opt_level}: nothing to print after it")
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
        print_table(table, out)


def print_table(table: Table, out: Console | None = None) -> None:
    """Print a table without cutting a cell: long names fold in a terminal (which sets the
    width); elsewhere the table is as wide as its widest row, so logs keep every name."""
    out = out or console
    for column in table.columns:
        column.overflow = "fold"
    if out.is_terminal:
        out.print(table)
        return
    from rich.measure import Measurement

    width = Measurement.get(out, out.options.update(max_width=100_000), table).maximum
    saved = out.width
    out.width = max(width, saved)
    try:
        out.print(table)
    finally:
        out.width = saved


@contextlib.contextmanager
def stage_progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A `progress(stage, done, total)` callback: a live bar on a terminal, else one plain
    `deepc: ...` line on stderr as each stage starts once the run has taken QUIET_SECONDS
    (CI logs show where a long run is)."""
    if err_console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description:<10}"), BarColumn(),
                       TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                       console=err_console, transient=True)
        tasks: dict[str, Any] = {}

        def live(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done + 1, total=total)

        with bar:
            yield live
        return
    yield from _plain_progress(title)


def _plain_progress(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """Short runs stay quiet (an error is then the only line). Once QUIET_SECONDS have
    passed, the stage running then is announced (by a timer: a stage can be long) and each
    later one as it starts."""
    current: list[str] = []  # the stage running now, as "stage (total)"
    announced: set[str] = set()
    lock = threading.Lock()

    def announce() -> None:
        with lock:
            if current and current[0] not in announced:
                announced.add(current[0])
                err_console.print(f"deepc: {title}: {current[0]}", highlight=False,
                                  markup=False, soft_wrap=True)

    timer = threading.Timer(QUIET_SECONDS, announce)
    timer.daemon = True

    def plain(stage: str, done: int, total: int) -> None:
        text = f"{stage} ({total})" if total > 1 else stage
        with lock:
            current[:] = [text]
        if not timer.is_alive():  # the timer has fired: announce at once
            announce()

    timer.start()
    try:
        yield plain
    finally:
        timer.cancel()

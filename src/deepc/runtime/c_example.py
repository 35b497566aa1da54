"""A bundle's C example: example/main.c and a Makefile that builds it with the target's cc.

main.c (from runtime/c/example_main.c) reads raw input files, calls `deepc_run` and writes raw
output files; the same program, built at compile time, is the bundle's `bin/run_model`, which
the Python runtime runs under an emulator for foreign-architecture bundles.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

MAIN_TEMPLATE = Path(__file__).resolve().parent / "c" / "example_main.c"
MAIN = "example/main.c"
MAKEFILE = "example/Makefile"
RUNNER = "bin/run_model"
CFLAGS = ("-std=c11", "-O2", "-Wall")
# the runner finds lib/model.so next to its own directory, wherever the bundle is unpacked;
# -l:model.so because the library has no lib prefix
RPATH = "-Wl,-rpath,$ORIGIN/../lib"
LDLIBS = ("-l:model.so", "-lm", "-lpthread")


# the last lines of the bundles' example Makefiles
MAKE_CLEAN = ("clean:", "\trm -f run_model", "", ".PHONY: clean", "")


def _rows(role: str, count: int) -> str:
    p = "DEEPC_" + role
    return "".join(f"    {{{p}{k}_NAME, {p}{k}_DTYPE, {p}{k}_RANK, (const long long[]){p}{k}_SHAPE,"
                   f" {p}{k}_BYTES}},\n" for k in range(count))


def render_main(num_inputs: int, num_outputs: int) -> str:
    """example/main.c for a model with that many inputs and outputs (the header has the rest)."""
    text = MAIN_TEMPLATE.read_text()
    return (text.replace("/* @INPUT_ROWS@ */\n", _rows("INPUT", num_inputs))
                .replace("/* @OUTPUT_ROWS@ */\n", _rows("OUTPUT", num_outputs)))


def example_cflags(target: Any, cc: Any) -> list[str]:
    """Flags for main.c: the target's -mcpu/-march and cflags, as for the model's runtime,
    spelled for `cc` (a deepc.backends.compilers.CCompiler)."""
    from deepc.backends.link import arch_flags

    return [*CFLAGS, *cc.flags(arch_flags(target))]


def example_ldflags(target: Any) -> list[str]:
    return [RPATH, *(getattr(target.toolchain, "ldflags", ()) or ())]


def _make_words(words: list[str]) -> str:
    # shell quoting for the recipe's shell, then `$` doubled so make passes it through
    return shlex.join(words).replace("$", "$$")


def render_makefile(target: Any, cc: Any) -> str:
    """example/Makefile: builds run_model from main.c with `cc`, the C compiler that built the
    bundle (a deepc.backends.compilers.CCompiler)."""
    triple = getattr(target.isa, "triple", None) or "this machine"
    tool = "zig cc" if cc.kind == "zig" else cc.argv[0]
    other = ("" if cc.kind == "cc" or not target.toolchain.cc
             else f"# with the gcc cross compiler instead: make CC={target.toolchain.cc};\n")
    return "\n".join([
        f"# Builds run_model (see main.c) for {target.name} ({triple}) with {tool},",
        f"# linked with ../lib/model.so;\n{other}# to build on the device itself: make CC=gcc.",
        "# Then: ./run_model ../params.bin INPUT.bin... OUTPUT.bin... (./run_model -i names them)",
        f"CC = {cc.make_words()}",
        f"CFLAGS = {_make_words(example_cflags(target, cc))}",
        f"LDFLAGS = -L../lib {_make_words(example_ldflags(target))}",
        f"LDLIBS = {_make_words(list(LDLIBS))}",
        "",
        "run_model: main.c ../include/deepc_model.h ../lib/model.so",
        "\t$(CC) $(CFLAGS) -I../include -o $@ main.c $(LDFLAGS) $(LDLIBS)",
        "",
        *MAKE_CLEAN,
    ])


def example_files(target: Any, cc: Any, num_inputs: int, num_outputs: int) -> dict[str, str]:
    """The example's files by their path in the bundle."""
    return {MAIN: render_main(num_inputs, num_outputs), MAKEFILE: render_makefile(target, cc)}


def runner_argv(target: Any, cc: Any, root: Path) -> list[str]:
    """The command that builds `root`/bin/run_model from `root`/example/main.c, as make would,
    in a directory laid out like the bundle."""
    return [*cc.argv, *example_cflags(target, cc), f"-I{root / 'include'}", "-o",
            str(root / RUNNER), str(root / MAIN), f"-L{root / 'lib'}", *example_ldflags(target),
            *LDLIBS]


def static_runner_argv(target: Any, cc: Any, root: Path, objects: list[Path]) -> list[str]:
    """The command that builds `root`/bin/run_model fully static, the model's `objects` (its
    kernels and the runtime, compiled for the static C library) linked in: it runs on any
    Linux of the architecture, with no C library and no lib/model.so beside it."""
    return [*cc.static_argv, *example_cflags(target, cc), f"-I{root / 'include'}", "-o",
            str(root / RUNNER), str(root / MAIN), *map(str, objects), "-lm", "-lpthread"]

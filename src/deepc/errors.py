"""Typed errors: every failure the library reports is a DeepcError with a one-line message.

Each class carries the `deepc` command's exit code for it (the table in the README):
0 ok, 1 a run-time failure, 2 bad input or usage (the model, an argument, an input file),
3 a missing or failing toolchain, 70 a deepc bug (any exception that is not a DeepcError).
"""

from __future__ import annotations

EXIT_CODES = {
    0: "success",
    1: "run-time failure (the compiled model or a device failed)",
    2: "bad input or usage: a malformed model, argument, input file or bundle",
    3: "a toolchain (compiler, linker, emulator) is missing or failed",
    70: "internal error: a deepc bug (rerun with DEEPC_DEBUG=1 and report it)",
}


class DeepcError(Exception):
    """Base class. The message names what is wrong and what to do; the CLI prints it as is."""

    exit_code = 1


class ModelLoadError(DeepcError):
    """The model file is missing, empty, truncated or not a model at all."""

    exit_code = 2


class ModelError(ModelLoadError):
    """The model breaks ONNX's rules (names, topology, types): the model's fault, not deepc's."""


class InputError(DeepcError):
    """An argument or an input array does not fit: a bad --input, a missing input, a path."""

    exit_code = 2


class UnsupportedOpError(DeepcError):
    """The model uses operators deepc does not implement (all of them are listed at once)."""

    exit_code = 2

    def __init__(self, missing: dict[str, list[str]]):
        self.missing = missing
        parts = []
        for op_type in sorted(missing):
            names = missing[op_type]
            shown = ", ".join(repr(n) for n in names[:5])
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            parts.append(f"{op_type} (nodes {shown}{more})")
        super().__init__(
            f"unsupported operator{'s' if len(missing) > 1 else ''}: {'; '.join(parts)}"
            " — remove or replace them before export, or file an issue naming the op"
        )


class ShapeError(DeepcError):
    """Shapes or types do not fit an operator's rule."""

    exit_code = 2


class ConversionError(DeepcError):
    """A supported operator is used in a way deepc cannot translate (say, a dynamic shape)."""

    exit_code = 2


class NeedsConstantError(ConversionError):
    """A value that fixes a shape (axes, pads, a target shape) is computed at run time."""

    def __init__(self, message: str, value: str):
        super().__init__(message)
        self.value = value


class TargetError(DeepcError):
    """A target file is missing or malformed; the message names the file and the field."""

    exit_code = 2


class UnknownPassError(DeepcError):
    """A pass name (in --disable-pass, --print-after or DEEPC_PRINT_AFTER) is not registered."""

    exit_code = 2


class VerifyError(DeepcError):
    """An IR invariant is broken: a bug in a pass or a frontend, not in the user's model
    (the frontend validates models first), so the CLI reports it as one (exit 70)."""

    exit_code = 70


class FitError(TargetError):
    """A design needs more of the FPGA than the target's budgets: the message names the
    largest consumer and what to change."""


class ToolchainError(DeepcError):
    """An external tool (compiler, linker, emulator) is missing or failed."""

    exit_code = 3


class BundleError(DeepcError):
    """A bundle is malformed or its files do not match the manifest checksums."""

    exit_code = 2


class DeepcNotice(UserWarning):
    """Something the user should know that is not an error (a symbolic dimension set to 1).
    The library warns; the CLI prints it as one `note:` line on stderr."""


class FixedDimReplaced(DeepcNotice, ShapeError):
    """An input shape given by the caller replaces a dimension the model fixes. A warning
    for the library (`deepc bench --batch` does it on purpose); `--input-shape` escalates it
    to an error (exit 2), since it only fixes symbolic dimensions."""

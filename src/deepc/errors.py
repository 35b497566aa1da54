"""Typed errors: every failure the library reports is a DeepcError with a one-line message."""

from __future__ import annotations


class DeepcError(Exception):
    """Base class. The message names what is wrong and what to do; the CLI prints it as is."""

    exit_code = 1


class ModelLoadError(DeepcError):
    """The model file is missing, empty, truncated or not a model at all."""

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
    """An IR invariant is broken: a bug in a pass or a frontend, not in the user's model."""


class ToolchainError(DeepcError):
    """An external tool (compiler, linker, emulator) is missing or failed."""

    exit_code = 3


class BundleError(DeepcError):
    """A bundle is malformed or its files do not match the manifest checksums."""

    exit_code = 2

"""What every `deepc` verb shares: the consoles, and library errors as one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

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


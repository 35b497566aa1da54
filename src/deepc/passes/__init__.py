"""Graph passes: named `graph -> graph` functions run as pipelines (-O0 .. -O3).

Every module of this package is imported here, so each pass registers itself by name
before any pipeline runs.
"""

from __future__ import annotations

import importlib
import pkgutil

from deepc.passes.manager import (
    PASSES,
    PIPELINES,
    PassContext,
    UnknownPassError,
    check_pass_names,
    register_pass,
    run_pipeline,
)

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["PASSES", "PIPELINES", "PassContext", "UnknownPassError", "check_pass_names",
           "register_pass", "run_pipeline"]

"""PACKAGERS: device kind -> `package(compiled, path) -> path`, the bundle writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepc.registry import Registry

Packager = Callable[[Any, Path], Path]
PACKAGERS: Registry[Packager] = Registry("packager")

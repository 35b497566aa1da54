"""Search spaces from a schedule record's knobs: a candidate is the default knobs with a few
changed; the scheduler, not this module, decides which combinations a nest can take."""

from __future__ import annotations

import math
import random
from typing import Any

from deepc.schedule.cpu_machine import CpuMachine

TILED = ("packed_gemm", "register_tile")


def knob_axes(knobs: dict[str, Any], machine: CpuMachine) -> dict[str, list[Any]]:
    """The values worth trying for each knob of a record (prefixed per nest as recorded)."""
    lanes = machine.lanes("float32")
    regs = machine.accumulator_registers
    axes: dict[str, list[Any]] = {}
    for name, value in knobs.items():
        prefix, _, knob = name.rpartition(".")
        prefix = f"{prefix}." if prefix else ""
        tiled = knobs.get(f"{prefix}kind") in TILED
        if knob == "vector":
            widths = [lanes * n for n in (1, 2, 3, 4)] if tiled else [1, lanes, 2 * lanes]
            axes[name] = sorted({*widths, max(lanes // 2, 2), value})
        elif knob == "rows":
            axes[name] = sorted({*range(1, min(2 * regs, 32) + 1), value})
        elif knob == "row_pairs":
            axes[name] = [False, True]
        elif knob == "kind" and value in TILED:
            axes[f"{prefix}pack"] = [False, True]
        elif knob == "threads":
            axes[name] = sorted({1, value})
    return {k: v for k, v in axes.items() if len(v) > 1}


def sample(default: dict[str, Any], axes: dict[str, list[Any]], rng: random.Random,
           changes: int = 3) -> dict[str, Any]:
    """The default knobs with one to `changes` of them set to another value."""
    knobs = {k: v for k, v in default.items() if not k.endswith("panel")}
    names = list(axes)
    for name in rng.sample(names, rng.randint(1, min(changes, len(names)))):
        knobs[name] = rng.choice([v for v in axes[name] if v != knobs.get(name)])
    return knobs


def within_registers(knobs: dict[str, Any], machine: CpuMachine) -> bool:
    """Whether every register tile's accumulators fit twice the register file: bigger tiles
    spill on every iteration and take LLVM seconds to compile, so they are not tried."""
    lanes = machine.lanes("float32")
    for name, kind in knobs.items():
        if name.endswith("kind") and kind in TILED:
            prefix = name.removesuffix("kind")
            vectors = -(-int(knobs.get(f"{prefix}vector", lanes)) // lanes)
            if int(knobs.get(f"{prefix}rows", 1)) * vectors > 2 * machine.accumulator_registers:
                return False
    return True


def knob_features(knobs: dict[str, Any], main: str, lanes: int) -> list[float]:
    """The main nest's knobs as numbers, for the cost model."""
    def get(name: str, default: Any) -> Any:
        return knobs.get(f"{main}{name}", default)

    vector, rows = float(get("vector", 1)), float(get("rows", 1))
    pack = get("pack", get("kind", "") == "packed_gemm")
    return [vector / lanes, rows, float(bool(get("row_pairs", False))), float(bool(pack)),
            math.log2(max(float(get("threads", 1)), 1.0)), vector * rows / lanes]

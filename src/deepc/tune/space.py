"""Search spaces from a schedule record's knobs: a candidate is the default knobs with a few
changed; the scheduler, not this module, decides which combinations a nest can take."""

from __future__ import annotations

import math
import random
from typing import Any

from deepc.schedule.cpu_machine import CpuMachine

TILED = ("packed_gemm", "register_tile")
TILE_LOOP_AXES = {"reduce_inner": [0, 1, 2, 3], "unroll": [1, 2, 3, 4, 8, 16],
                  "row_loop": [0, 1, 2], "pair_block": [2, 3, 4, 5, 8],
                  "outer_inner": [0, 1, 2], "sweep": [False, True]}  # the default first
# blocks of the reduction loop: tried only on nests whose weights are larger than the L2 cache
REDUCE_BLOCKS = [1, 2, 4, 8]


def knob_axes(knobs: dict[str, Any], machine: CpuMachine,
              streamed: frozenset[str] = frozenset()) -> dict[str, list[Any]]:
    """The values worth trying for each knob of a record (prefixed per nest as recorded);
    `streamed` names the nests (by prefix) whose weights are larger than the L2 cache."""
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
            # loop order, unrolling and the tile's row loop: absent from a default record
            # (their defaults are 0, 1, 0); the scheduler rejects what a nest cannot take
            for extra, values in TILE_LOOP_AXES.items():
                axes[f"{prefix}{extra}"] = sorted({*values, knobs.get(f"{prefix}{extra}",
                                                                      values[0])})
            if prefix in streamed:
                axes[f"{prefix}reduce_blocks"] = REDUCE_BLOCKS
        elif knob == "threads":
            axes[name] = sorted({1, value})
    return {k: v for k, v in axes.items() if len(v) > 1}


def sample(default: dict[str, Any], axes: dict[str, list[Any]], rng: random.Random,
           changes: int = 3) -> dict[str, Any]:
    """The default knobs with one to `changes` of them set to another value."""
    knobs = {k: v for k, v in default.items() if not k.endswith("panel")}
    names = list(axes)
    for name in rng.sample(names, rng.randint(1, min(changes, len(names)))):
        # a knob the record leaves out has its axis's first value (the tile-loop knobs)
        current = knobs.get(name, axes[name][0])
        knobs[name] = rng.choice([v for v in axes[name] if v != current])
    return knobs


def respread_threads(knobs: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """`knobs` without the thread count of each nest whose other knobs differ from
    `default` while its thread count does not: the default's count fuses the default's
    outer loops, and a tile along another loop leaves other loops outside, so the
    scheduler spreads those afresh."""
    changed = {name.rpartition(".")[0] for name in {*knobs, *default}
               if name.rpartition(".")[2] != "threads" and knobs.get(name) != default.get(name)}
    return {k: v for k, v in knobs.items()
            if not (k.rpartition(".")[2] == "threads" and k.rpartition(".")[0] in changed
                    and v == default.get(k))}


def register_tiles(knobs: dict[str, Any], main: str, machine: CpuMachine) -> list[dict[str, Any]]:
    """The main nest's register tiles that hold more than half of the accumulator registers
    and no more (vector width x pair blocks x rows), each as the default knobs with only
    the tile changed: the tiles that pay most often, yet each two or three knobs away from
    the default, which a few random changes rarely reach (squeezenet's classifier: 3
    blocks x 7 rows, the last tile 6, not found in 134 random trials)."""
    if knobs.get(f"{main}kind") not in TILED:
        return []
    lanes, regs = machine.lanes("float32"), machine.accumulator_registers
    tile_knobs = {f"{main}{k}" for k in ("vector", "rows", "row_pairs", "pair_block")}
    base = {k: v for k, v in knobs.items() if k not in tile_knobs and not k.endswith("panel")}
    tiles = []
    for width in sorted({int(knobs.get(f"{main}vector", lanes)), lanes, 2 * lanes, 4 * lanes}):
        vectors = -(-width // lanes)
        for block in (1, 2, 3, 4, 5, 8):
            for rows in range(2, regs + 1):
                if regs < 2 * rows * vectors * block <= 2 * regs:
                    pairs = {f"{main}pair_block": block} if block > 2 else {}
                    tiles.append({**base, f"{main}vector": width,
                                  f"{main}rows": rows, f"{main}row_pairs": block > 1,
                                  **pairs})
    return tiles


def within_registers(knobs: dict[str, Any], machine: CpuMachine) -> bool:
    """Whether every register tile's accumulators fit twice the register file: bigger tiles
    spill on every iteration and take LLVM seconds to compile, so they are not tried."""
    lanes = machine.lanes("float32")
    return all(accumulators(knobs, name.removesuffix("kind"), lanes)
               <= 2 * machine.accumulator_registers
               for name, kind in knobs.items() if name.endswith("kind") and kind in TILED)


def accumulators(knobs: dict[str, Any], prefix: str, lanes: int) -> int:
    """The vector accumulators of a nest's register tile: rows x pair blocks x vectors."""
    vectors = -(-int(knobs.get(f"{prefix}vector", lanes)) // lanes)
    blocks = knobs.get(f"{prefix}pair_block", 2 if knobs.get(f"{prefix}row_pairs") else 1)
    return int(knobs.get(f"{prefix}rows", 1)) * max(int(blocks), 1) * vectors


def knob_features(knobs: dict[str, Any], main: str, lanes: int) -> list[float]:
    """The main nest's knobs as numbers, for the cost model."""
    def get(name: str, default: Any) -> Any:
        return knobs.get(f"{main}{name}", default)

    vector, rows = float(get("vector", 1)), float(get("rows", 1))
    pack = get("pack", get("kind", "") == "packed_gemm")
    return [vector / lanes, rows, float(bool(get("row_pairs", False))), float(bool(pack)),
            math.log2(max(float(get("threads", 1)), 1.0)), vector * rows / lanes,
            float(get("reduce_inner", 0)), math.log2(max(float(get("unroll", 1)), 1.0)),
            float(get("row_loop", 0)), vector * rows * float(get("unroll", 1)) / lanes,
            float(get("pair_block", 2 if get("row_pairs", False) else 1)),
            float(get("outer_inner", 0)), math.log2(max(float(get("reduce_blocks", 1)), 1.0))]

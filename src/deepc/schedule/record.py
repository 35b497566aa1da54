"""Schedule records: what schedule a kernel got, keyed by its workload, replayable.

A workload is what a schedule depends on: the kernel's loop nest (its canonical text with
buffers renamed by position, so two identical convolutions of one model share a key), its
buffers' shapes and dtypes, and the target's hardware fingerprint. A record names the knobs
the default (or tuned) schedule chose and lists its steps, one list per launch (CPU kernels
have one launch; GPU kernels one per stage), so replaying the steps on the kernel's lowered
function gives the function that was compiled. Bundles list their records in the manifest;
`deepc inspect-ir --stage schedule` prints them; `deepc tune` will search their knobs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deepc.ir.loop import PrimFunc
from deepc.ir.loop_text import func_to_text
from deepc.schedule.schedule import Schedule


@dataclass(frozen=True)
class Workload:
    ops: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    nest: str  # hash of the loop nest's canonical text, buffers renamed by position
    target: str  # the target's fingerprint

    @property
    def key(self) -> str:
        text = repr((self.ops, self.shapes, self.dtypes, self.nest, self.target))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @staticmethod
    def of(func: PrimFunc, ops: Sequence[str], target_fingerprint: str) -> Workload:
        return Workload(tuple(ops), tuple(b.shape for b in func.params),
                        tuple(b.dtype for b in func.params), nest_hash(func),
                        target_fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "ops": list(self.ops),
                "shapes": [list(s) for s in self.shapes], "dtypes": list(self.dtypes),
                "nest": self.nest, "target": self.target}


def nest_hash(func: PrimFunc) -> str:
    """The loop nest's text without the names a model gives its kernel and values."""
    names = {b.name: f"p{i}" for i, b in enumerate(func.params)}
    text = func_to_text(PrimFunc("kernel", func.params, func.body))
    if names:
        pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                             + r"(?=[\[:])")
        text = pattern.sub(lambda m: names[m.group(0)], text)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Steps = tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class ScheduleRecord:
    """One kernel's schedule: its named knobs and, per launch, the primitive applications."""

    kernel: str
    workload: Workload
    knobs: Mapping[str, Any] = field(default_factory=dict)
    launches: tuple[Steps, ...] = ()
    source: str = "default"  # "default" | "tuned"

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "workload": self.workload.to_dict(),
                "knobs": dict(self.knobs), "source": self.source,
                "launches": [[list(step) for step in steps] for steps in self.launches]}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> ScheduleRecord:
        w = data["workload"]
        workload = Workload(tuple(w["ops"]), tuple(tuple(s) for s in w["shapes"]),
                            tuple(w["dtypes"]), w["nest"], w["target"])
        launches = tuple(tuple(tuple(step) for step in steps) for steps in data["launches"])
        return ScheduleRecord(data["kernel"], workload, dict(data["knobs"]), launches,
                              data.get("source", "default"))

    def text(self) -> str:
        """Human-readable: the knobs, then each launch's steps as calls."""
        knobs = ", ".join(f"{k}={v}" for k, v in self.knobs.items()) or "none"
        lines = [f"# {self.kernel}  workload {self.workload.key}  ({self.source})",
                 f"knobs: {knobs}"]
        for k, steps in enumerate(self.launches):
            head = f"launch {k}:" if len(self.launches) > 1 else "steps:"
            body = str(Schedule.from_list([list(s) for s in steps])) or "(none)"
            lines += [head, *("  " + line for line in body.splitlines())]
        return "\n".join(lines)

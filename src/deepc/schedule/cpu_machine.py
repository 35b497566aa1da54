"""What CPU default schedules read from a target: vector width, accumulator registers,
cores, caches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepc.ir.types import itemsize


@dataclass(frozen=True)
class CpuMachine:
    vector_bits: int
    accumulator_registers: int
    cores: int
    l1d_kib: int
    l2_kib: int
    cache_line: int = 64  # bytes

    @staticmethod
    def of(target: Any) -> CpuMachine:
        """From a Target (each field is required of CPU and wasm targets: reading a missing
        one raises TargetError naming it)."""
        return CpuMachine(target.vector_bits, target.accumulator_registers, target.cores,
                          target.l1d_kib, target.l2_kib, target.cache_line)

    def lanes(self, dtype: str) -> int:
        """`dtype` elements per vector register (at least 1)."""
        return max(self.vector_bits // (8 * max(itemsize(dtype), 1)), 1)


"""What CPU default schedules read from a target: vector width, accumulator registers,
cores, caches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deepc.ir.types import itemsize
from deepc.target.host import broadcast_operand_of, vector_registers_of


@dataclass(frozen=True)
class CpuMachine:
    vector_bits: int
    accumulator_registers: int
    cores: int
    l1d_kib: int
    l2_kib: int
    cache_line: int = 64  # bytes
    # the register file and whether FMAs broadcast an operand from memory, read from the
    # ISA (triple and features); a machine built by hand defaults to AVX-512's
    vector_registers: int = 32
    broadcast_operand: bool = True

    @staticmethod
    def of(target: Any) -> CpuMachine:
        """From a Target (each field is required of CPU and wasm targets: reading a missing
        one raises TargetError naming it)."""
        return CpuMachine(target.vector_bits, target.accumulator_registers, target.cores,
                          target.l1d_kib, target.l2_kib, target.cache_line,
                          vector_registers_of(target.triple, target.features),
                          broadcast_operand_of(target.features))

    def operand_registers(self, vectors: int, broadcasts: int) -> int:
        """Registers a tile step's operands take: its vectors, and its broadcasts where an
        FMA cannot read them from memory."""
        return vectors + (0 if self.broadcast_operand else broadcasts)

    def row_vectors(self, widest: int = 4, rows: int | None = None) -> int:
        """Most registers (a power of two, at most `widest`) that one row of a register tile
        may span: the rows sharing the accumulator budget, plus one row's vector operands and
        a broadcast register where FMAs cannot read it from memory, must fit the register
        file, or the tile spills in its inner loop. AVX-512 (24 accumulators, 32 registers):
        4, 6 rows of 4; AVX2 (12 of 16): 2, 6 rows of 2, as 3 rows of 4 need 17. Where the
        nest has only `rows` rows to tile, those."""
        vectors = widest
        while vectors > 1:
            held = max(self.accumulator_registers // vectors, 1)
            held = min(held, rows) if rows else held
            if held * vectors + self.operand_registers(vectors, 1) <= self.vector_registers:
                break
            vectors //= 2
        return vectors

    def lanes(self, dtype: str) -> int:
        """`dtype` elements per vector register (at least 1)."""
        return max(self.vector_bits // (8 * max(itemsize(dtype), 1)), 1)


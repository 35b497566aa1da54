"""Register tiles on a 16-register CPU whose FMAs cannot broadcast from memory (AVX2): the tile,
its order and its unrolled steps fit the register file; AVX-512's schedules stay as they were."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.loop import For, ForKind, walk_stmts
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from deepc.target import load_target
from tests.schedule.test_cpu_conv_tiles import blocked_conv, run_blocked
from tests.schedule.test_cpu_gemm import _kernel_func

AVX2 = CpuMachine(256, 12, 1, 32, 512, vector_registers=16, broadcast_operand=False)
AVX512 = CpuMachine(512, 24, 1, 48, 1024)


@pytest.mark.parametrize(("name", "registers", "broadcast"), [
    ("x86_64", 16, False), ("x86_64-avx512", 32, True), ("aarch64", 32, False),
    ("rpi3", 16, False)])
def test_machine_reads_the_register_file(name: str, registers: int, broadcast: bool) -> None:
    machine = CpuMachine.of(load_target(name))
    assert (machine.vector_registers, machine.broadcast_operand) == (registers, broadcast)


def _knobs(sch) -> dict:  # type: ignore[no-untyped-def]
    return {key.rpartition(".")[2]: v for key, v in sch.knobs.items()
            if "conv_nchwc" in key or "." not in key}


def _tile_loops(func) -> list[For]:  # type: ignore[no-untyped-def]
    """The unrolled loops of the conv's tile update, outermost first."""
    return [s for s in walk_stmts(func.body) if isinstance(s, For)
            and s.kind is ForKind.UNROLLED and s.var.name.startswith("conv_nchwc")]


@pytest.mark.parametrize(("c", "o", "size", "k", "tile"), [
    (32, 128, 27, 3, (1, 9)),    # squeezenet's fire expand 3x3: 27-pixel rows
    # resnet18's layer3, 14-pixel rows: 4 blocks x 3 rows (12 + 3 broadcasts + 1) where
    # AVX-512's rule (past two blocks, their vectors in registers) left 1 x 7
    (256, 256, 14, 3, (4, 3)),
    (32, 64, 24, 3, (2, 6)),     # 2 blocks x 6 rows, the blocks inside (see below)
    (16, 64, 55, 3, (2, 5)),     # squeezenet's first fire: 55 pixels
    (64, 256, 13, 1, (1, 13)),   # a 1x1 conv over 13-pixel rows, held whole
])
def test_avx2_tile_fits_sixteen_registers(c: int, o: int, size: int, k: int,
                                          tile: tuple[int, int]) -> None:
    """Accumulators, the operand set the tile's inner loop holds (the smaller of the blocks'
    vectors and the rows' broadcasts) and one streaming operand fit 16 registers."""
    _, kernel, _ = blocked_conv(AVX2, c, o, size, k)
    knobs = _knobs(default_schedule(kernel.func, AVX2))
    block = knobs.get("pair_block", 2) if knobs["row_pairs"] else 1
    rows = knobs["rows"]
    assert (block, rows) == tile
    assert block * rows + min(block, rows) + 1 <= AVX2.vector_registers


def test_avx2_runs_the_blocks_inside_the_rows() -> None:
    """A 2 x 6 tile holds two blocks' vectors across its rows, not six broadcasts across its
    blocks (19 registers); AVX-512, whose FMAs broadcast from memory, keeps rows inside."""
    graph, kernel, y = blocked_conv(AVX2, 32, 64, 24)
    sch = default_schedule(kernel.func, AVX2)
    assert (_knobs(sch)["rows"], _knobs(sch).get("pair_block", 2)) == (6, 2)
    func = sch.apply(kernel.func)
    tile = _tile_loops(func)
    update = [t for t in tile if t.extent in (2, 6)]
    assert [t.extent for t in update[:2]] == [6, 2]
    x = np.random.default_rng(0).standard_normal((1, 32, 24, 24)).astype(np.float32)
    run_blocked(func, graph, kernel, y, x, 8)
    graph, kernel, _ = blocked_conv(AVX512, 128, 128, 24)
    wide = _tile_loops(default_schedule(kernel.func, AVX512).apply(kernel.func))
    assert wide[0].extent < wide[1].extent  # the blocks outside the rows


def test_avx2_unrolls_the_reduction_steps() -> None:
    """Where a step's operands outnumber the registers the accumulators leave, the schedule
    unrolls the innermost reduction loop itself (LLVM's unroll by two spilled); never on
    AVX-512, and the numbers stay."""
    graph, kernel, y = blocked_conv(AVX2, 32, 128, 27)
    sch = default_schedule(kernel.func, AVX2)
    assert _knobs(sch)["unroll"] == 8
    func = sch.apply(kernel.func)
    steps = [s for s in walk_stmts(func.body) if isinstance(s, For)
             and s.var.name.endswith("_ri")]
    assert steps and all(s.kind is ForKind.UNROLLED for s in steps)
    x = np.random.default_rng(1).standard_normal((1, 32, 27, 27)).astype(np.float32)
    run_blocked(func, graph, kernel, y, x, 8)
    graph, kernel, _ = blocked_conv(AVX512, 32, 128, 27)
    assert "unroll" not in _knobs(default_schedule(kernel.func, AVX512))
    # a 13-pixel row held whole past the 12-accumulator budget leaves one register spare:
    # unrolled it spilled, so LLVM keeps it
    _, kernel, _ = blocked_conv(AVX2, 64, 256, 13, 1)
    knobs = _knobs(default_schedule(kernel.func, AVX2))
    assert knobs["rows"] == 13 and "unroll" not in knobs


@pytest.mark.parametrize(("machine", "tile"), [(AVX2, (16, 6)), (AVX512, (64, 6))])
def test_gemm_tile_fits_the_register_file(machine: CpuMachine, tile: tuple[int, int]) -> None:
    """A GEMM row spans as many registers as leave its accumulators, its B vectors and a
    broadcast inside the register file: on AVX2, 6 rows of 2 (15 registers), not 3 rows of 4
    (17: vit's MLP matmuls spilled in their inner loop, 1.4x onnxruntime's time); AVX-512
    keeps 6 rows of 4 (28 of 32)."""
    func = _kernel_func((197, 384), (384, 1536))
    knobs = default_schedule(func, machine).knobs
    assert (knobs["vector"], knobs["rows"]) == tile
    lanes, registers = machine.lanes("float32"), tile[0] // machine.lanes("float32")
    assert tile[1] * registers + machine.operand_registers(registers, 1) <= \
        machine.vector_registers
    assert lanes * machine.row_vectors() == tile[0]

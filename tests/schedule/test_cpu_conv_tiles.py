"""The default CPU schedule of blocked convs: the output-channel block as vector lanes, a
register tile along the output row with no guarded tail, and the numbers kept."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.backends.llvm.codegen import emit_module
from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
from deepc.ir.loop import For, ForKind, IfThenElse, walk_stmts
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.ops.interpreter import run_graph
from deepc.ops.layout import block_array
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from tests.passes.support import Net, weights

CASES = [(16, 16, 14, 1), (16, 16, 13, 1), (16, 16, 12, 16), (8, 16, 28, 1)]


@pytest.mark.parametrize(("c", "o", "width", "group"), CASES)
def test_blocked_conv_tile(c: int, o: int, width: int, group: int) -> None:
    lanes = 8
    n = Net(x=(1, c // lanes, 6, width, lanes))
    w = weight_to_blocked(weights(o, c // group, 3, 3), lanes, lanes, group > 1)
    y = n("relu", n("conv_nchwc", "x", n.const(w), n.const(weights(o)), pads=(1, 1, 1, 1),
                    group=group))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    func = default_schedule(kernel.func, CpuMachine(256, 12, 1, 32, 512)).apply(kernel.func)
    loops = [s for s in walk_stmts(func.body) if isinstance(s, For)]
    vec = [f for f in loops if f.kind is ForKind.VECTORIZED and f.var.name.startswith("conv_nc")]
    assert vec and all(f.extent == lanes for f in vec)
    tile = [f for f in loops if f.kind is ForKind.UNROLLED]
    assert tile and max(f.extent for f in tile) >= 4  # independent accumulators
    # no bounds tests on the tile; a depthwise conv's tiles are versioned, bare inside the
    # image (schedule/interior.py)
    tests = [s for s in walk_stmts(func.body) if isinstance(s, IfThenElse)]
    assert all(t.otherwise is not None for t in tests) and (group > 1 or not tests)
    x = np.random.default_rng(0).standard_normal((1, c, 6, width)).astype(np.float32)
    run_blocked(func, graph, kernel, y, x, lanes)


AVX512 = CpuMachine(512, 24, 1, 48, 1024)
AVX2 = CpuMachine(256, 12, 1, 32, 512)


def blocked_conv(machine: CpuMachine, c: int, o: int, size: int, k: int = 3):  # type: ignore[no-untyped-def]
    """A k x k conv_nchwc of c -> o channels on a size x size image in the machine's float
    blocks: its graph, its one kernel and its output's name."""
    lanes = machine.lanes("float32")
    n = Net(x=(1, c // lanes, size, size, lanes))
    w = weight_to_blocked(weights(o, c, k, k), lanes, lanes, False)
    y = n("conv_nchwc", "x", n.const(w), n.const(weights(o)), pads=(k // 2,) * 4, group=1)
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    return graph, kernel, y


def _conv_knobs(machine: CpuMachine, c: int, o: int, size: int, k: int = 3) -> dict:
    _, kernel, _ = blocked_conv(machine, c, o, size, k)
    knobs = dict(default_schedule(kernel.func, machine).knobs)
    return {key.rpartition(".")[2]: v for key, v in knobs.items() if "conv_nchwc" in key
            or "." not in key}


@pytest.mark.parametrize(("machine", "c", "o", "size", "block", "rows"), [
    # squeezenet's expand conv: 16 input channels, the 4 blocks' weights (4 x 9 KiB) stay in
    # L1, so 4 blocks x 5 pixels (9 loads per 20 multiply-adds) beat 2 x 11 (13 per 22)
    (AVX512, 16, 64, 55, 4, 5),
    # 64 input channels: 4 blocks' weights (147 KiB) leave L1; two blocks stay
    (AVX512, 64, 64, 56, 2, 8),
    # resnet18's layer4: 7-pixel rows, 2 x 7 (a 4 x 7 tile has no registers for its vectors)
    (AVX512, 512, 512, 7, 2, 7),
    # an AVX2 machine (16 registers, 12 accumulators): 2 blocks of 8 channels x 5 pixels;
    # a third block would leave no register for the vectors
    (AVX2, 16, 64, 55, 2, 5),
])
def test_pair_tile_from_machine(machine: CpuMachine, c: int, o: int, size: int, block: int,
                                rows: int) -> None:
    knobs = _conv_knobs(machine, c, o, size)
    assert knobs["row_pairs"] is True
    assert (knobs.get("pair_block", 2), knobs["rows"]) == (block, rows)
    # the accumulators and the block's vectors fit the machine's registers
    assert block * rows + (block if block > 2 else 0) <= machine.accumulator_registers


def test_short_rows_fill_the_registers_with_blocks() -> None:
    """Squeezenet's classifier (1x1, 13x13 pixels, an odd count of 16-channel blocks): one
    block's 13-pixel row holds 13 of 24 accumulators; 3 blocks x 7 rows (the last tile 6)
    keep 19.5 busy (0.83x its time), and the short tile's rows compute right. On AVX2 (12
    accumulators) no blocking keeps 1.5 times the row's busy: it stays."""
    n = Net(x=(1, 4, 13, 13, 16))
    y = n("conv_nchwc", "x", n.const(weight_to_blocked(weights(48, 64, 1, 1), 16, 16, False)),
          n.const(weights(48)))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    sch = default_schedule(kernel.func, AVX512)
    assert (sch.knobs["row_pairs"], sch.knobs.get("pair_block"), sch.knobs["rows"]) == (
        True, 3, 7)
    x = np.random.default_rng(0).standard_normal((1, 64, 13, 13)).astype(np.float32)
    run_blocked(sch.apply(kernel.func), graph, kernel, y, x, 16)
    assert _conv_knobs(AVX2, 64, 24, 13, k=1)["row_pairs"] is False


def run_blocked(func, graph, kernel, y: str, x: np.ndarray, lanes: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A blocked conv kernel JIT-compiled and run on NCHW input `x` (blocked here), checked
    against the graph's reference; its output."""
    feeds = {"x": block_array(x, lanes)}
    args = [feeds["x"], *(graph.constants[i] for i in kernel.inputs[1:])]
    out = np.zeros(graph.types[y].shape, np.float32)
    jit = JitModule(optimize(emit_module([func]), MachineSpec.host()))
    jit.kernel(func.name, len(args) + 1)(*[np.ascontiguousarray(a).ctypes.data
                                           for a in [*args, out]])
    want = run_graph(graph, feeds)[y]
    # float32 sums taken in another order: an output near zero carries the rounding of terms
    # as large as the biggest outputs (a 3x3 conv over 32 channels: 1.3e-5 on a 0.16 output)
    atol = 1e-5 * max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=atol)
    return out

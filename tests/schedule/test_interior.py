"""Depthwise convs over their padding (schedule/interior.py): tiles inside the image run
without clamps or masks, tiles at the border keep them, and the numbers stay the same."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.ir.expr import Select
from deepc.ir.loop import IfThenElse, PrimFunc, Store, walk_stmts
from deepc.ir.tensor import walk
from deepc.lowering.kernels import graph_kernels
from deepc.ops.conv_nchwc import weight_to_blocked
from deepc.schedule.cpu import default_schedule
from deepc.schedule.cpu_machine import CpuMachine
from deepc.schedule.schedule import Schedule
from tests.passes.support import Net, weights
from tests.schedule.test_cpu_conv_tiles import run_blocked

AVX512 = CpuMachine(512, 24, 1, 48, 1024)
AVX2 = CpuMachine(256, 12, 1, 32, 512)


def _depthwise(machine: CpuMachine, c: int, size: int, k: int, stride: int, pad: int
               ) -> tuple:
    lanes = machine.lanes("float32")
    n = Net(x=(1, c // lanes, size, size, lanes))
    w = weight_to_blocked(weights(c, 1, k, k), lanes, lanes, True)
    y = n("sigmoid", n("conv_nchwc", "x", n.const(w), n.const(weights(c)), pads=(pad,) * 4,
                       strides=(stride, stride), group=c))
    graph = n.graph(y)
    (kernel,) = graph_kernels(graph, [list(graph.nodes)])
    return graph, kernel, y, lanes


def _masks(s: object) -> int:
    return sum(isinstance(e, Select) for x in walk_stmts(s) if isinstance(x, Store)  # type: ignore[arg-type]
               for e in walk(x.value))


def _run(func: PrimFunc, graph, kernel, y: str, lanes: int, size: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(size).standard_normal((1, graph.types["x"].shape[1] * lanes,
                                                      size, size)).astype(np.float32)
    return run_blocked(func, graph, kernel, y, x, lanes)


@pytest.mark.parametrize(("machine", "c", "size", "k", "stride", "pad"), [
    (AVX512, 32, 23, 3, 1, 1),   # a 3x3 over a width that 16-pixel tiles do not divide
    (AVX512, 16, 20, 5, 2, 2),   # efficientnet's strided 5x5
    (AVX2, 16, 9, 3, 1, 1),      # an image narrower than two tiles
    (AVX2, 8, 14, 5, 1, 2),
])
def test_tiles_inside_the_image_drop_their_masks(machine: CpuMachine, c: int, size: int,
                                                 k: int, stride: int, pad: int) -> None:
    graph, kernel, y, lanes = _depthwise(machine, c, size, k, stride, pad)
    sch = default_schedule(kernel.func, machine)
    assert any(s.primitive == "version_interior" for s in sch.steps)
    func = sch.apply(kernel.func)
    (version,) = [s for s in walk_stmts(func.body)
                  if isinstance(s, IfThenElse) and s.otherwise is not None]
    assert _masks(version.then) == 0 and _masks(version.otherwise) > 0
    _run(func, graph, kernel, y, lanes, size)
    # the same numbers as the tiles all masked (the schedule without the step)
    plain = Schedule([s for s in sch.steps if s.primitive != "version_interior"])
    np.testing.assert_array_equal(_run(func, graph, kernel, y, lanes, size),
                                  _run(plain.apply(kernel.func), graph, kernel, y, lanes, size))


def test_unpadded_convs_are_not_versioned() -> None:
    _, kernel, *_ = _depthwise(AVX512, 16, 12, 3, 1, 0)
    sch = default_schedule(kernel.func, AVX512)
    assert not any(s.primitive == "version_interior" for s in sch.steps)


def test_a_missing_buffer_is_named() -> None:
    _, kernel, *_ = _depthwise(AVX512, 16, 12, 3, 1, 1)
    with pytest.raises(KeyError, match="no_such_acc"):
        Schedule().add("version_interior", "no_such_acc").apply(kernel.func)

"""A graph and a few seeded random inputs to each tensor's largest magnitude: the calibration
that a fixed-point precision picks each tensor's integer bits from."""

from __future__ import annotations

import numpy as np

from deepc.ir.graph import Graph
from deepc.ops.interpreter import run_graph_values
from deepc.runtime.inputs import random_inputs

# not the seeds tests compare with (0, 1): the formats must hold for inputs they never saw
CALIBRATION_SEEDS = (101, 102, 103)


def value_ranges(graph: Graph, seeds: tuple[int, ...] = CALIBRATION_SEEDS) -> dict[str, float]:
    """max |value| of every float tensor (weights, inputs, intermediates) over the numpy
    reference runs of the graph on inputs drawn with `seeds`."""
    out: dict[str, float] = {}
    for seed in seeds:
        for name, value in run_graph_values(graph, random_inputs(graph, seed)).items():
            array = np.asarray(value)
            if array.dtype.kind == "f" and array.size:
                out[name] = max(out.get(name, 0.0), float(np.max(np.abs(array))))
    return out

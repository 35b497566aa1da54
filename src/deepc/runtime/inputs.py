"""Seeded random inputs for a graph: what `deepc run` and the tests feed a model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deepc.errors import InputError
from deepc.ir.graph import Graph
from deepc.ir.types import np_dtype
from deepc.runtime.bundle import BundleContents


def index_bound(graph: Graph, name: str) -> int | None:
    """The largest safe value+1 for an integer input used as gather indices, if any."""
    bound = None
    for node in graph.consumers().get(name, []):
        if node.op == "gather" and node.inputs[1] == name:
            data = graph.types[node.inputs[0]]
            axis = int(node.attr("axis", 0)) % max(data.rank, 1)
            dim = data.shape[axis]
            bound = dim if bound is None else min(bound, dim)
    return bound


def input_bounds(graph: Graph) -> dict[str, int]:
    """Exclusive upper bounds for integer inputs that index something (recorded in bundles)."""
    return {n: b for n in graph.inputs if (b := index_bound(graph, n)) is not None}


def random_arrays(specs: list[tuple[str, tuple[int, ...], str]], seed: int = 0,
                  bounds: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded arrays for (name, shape, dtype) specs: normal floats, coin-flip bools, and
    integers in [0, bound) (bound 10 unless the input indexes something smaller)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape, dtype in specs:
        dt = np_dtype(dtype)
        if dt.kind == "f":
            out[name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            out[name] = rng.random(shape) < 0.5
        elif dt.kind in "iu":
            hi = (bounds or {}).get(name) or 10
            out[name] = rng.integers(0, hi, size=shape).astype(dt)
        else:
            raise TypeError(f"cannot make random {dtype} input {name!r}")
    return out


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    specs = [(n, graph.types[n].shape, graph.types[n].dtype) for n in graph.inputs]
    return random_arrays(specs, seed, input_bounds(graph))


def check_index_ranges(feeds: Mapping[str, np.ndarray], bounds: Mapping[str, int]) -> None:
    """Refuse ids outside [-bound, bound) in inputs that index a table (Gather/Embedding
    ids), as onnxruntime does; the compiled kernels would clamp them silently. One min and
    max per such input (usually a few ids): nothing next to the model's run."""
    for name, bound in bounds.items():
        ids = feeds.get(name)
        if ids is None or ids.size == 0 or ids.dtype.kind not in "iu":
            continue
        low, high = int(ids.min()), int(ids.max())
        if low < -bound or high >= bound:
            bad = high if high >= bound else low
            raise InputError(f"input {name!r} holds index {bad}, outside [-{bound}, {bound - 1}]"
                             f" for the {bound} rows it selects from — fix the ids (or the "
                             "vocabulary size)")


def bundle_inputs(bundle: BundleContents, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for a bundle's model (index inputs kept in range), from its
    manifest alone: what a client that runs the bundle elsewhere feeds it."""
    specs = [(s.name, s.shape, s.dtype) for s in bundle.inputs]
    return random_arrays(specs, seed, bundle.manifest.get("input_bounds", {}))


def load_input_files(specs: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """Parse NAME=FILE.npy specs (as `deepc run --input` takes them)."""
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"bad --input {spec!r}: expected NAME=FILE.npy")
        p = Path(path)
        if not p.exists():
            raise InputError(f"input file {p} does not exist")
        try:
            out[name] = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"input file {p} is not a .npy array: {exc}") from None
    return out

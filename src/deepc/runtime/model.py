"""`Model`: a CPU bundle run on numpy arrays, in-process with ctypes or under an emulator."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.errors import InputError, ShapeError
from deepc.ir.types import np_dtype
from deepc.runtime.bundle import BundleContents, TensorSpec, read_bundle
from deepc.runtime.emulated import EmulatedLibrary
from deepc.runtime.inputs import check_index_ranges
from deepc.runtime.memory import aligned_array
from deepc.runtime.native import NativeLibrary

# the architecture part of a triple, as one name per instruction set
_ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "arm64": "aarch64"}


def _arch(triple: str) -> str:
    arch = triple.split("-", 1)[0].lower()
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch.startswith(("armv", "thumbv")) or arch in ("arm", "armhf", "armel"):
        return "arm"
    if arch in ("i386", "i486", "i586", "i686"):
        return "x86"
    return arch


def _os(triple: str) -> str:
    parts = triple.lower().split("-")
    return parts[2] if len(parts) > 2 else ""


def _host_mismatch(bundle: BundleContents) -> tuple[str, str] | None:
    """(bundle triple, host triple) when the bundle is for another instruction set or OS."""
    from deepc.target.host import llvm_host

    triple = bundle.triple or ""
    host_triple = llvm_host()[0]
    if _arch(triple) != _arch(host_triple) or _os(triple) != _os(host_triple):
        return triple or "an unknown machine", host_triple
    return None


def check_runnable_here(bundle: BundleContents) -> None:
    """Raise InputError (exit 2) unless this process can run the bundle's library natively."""
    from deepc.target.host import llvm_host

    where = str(bundle.source)
    kind = bundle.target.get("device", {}).get("kind", "cpu")
    if kind != "cpu":
        raise InputError(f"{where} is a {kind} bundle; this runtime runs cpu bundles only —"
                         " compile the model for a cpu target")
    mismatch = _host_mismatch(bundle)
    if mismatch:
        raise InputError(f"{where} is compiled for {mismatch[0]} and cannot be loaded on this"
                         f" machine ({mismatch[1]}) — run it on such a machine, or compile the"
                         " model for --target host")
    # an instruction this CPU lacks would kill the process (SIGILL) instead of raising
    host_features = llvm_host()[2]
    wanted = {f for f in bundle.target.get("isa", {}).get("features", []) if f.startswith("+")}
    missing = sorted(wanted - set(host_features)) if host_features else []
    if missing:
        raise InputError(f"{where} uses CPU features this machine lacks ({', '.join(missing)})"
                         " — compile the model for --target host")


def open_library(bundle: BundleContents) -> NativeLibrary | EmulatedLibrary:
    """The bundle's model loaded into this process, or, for a bundle compiled for another
    machine whose target names an emulator, its bin/run_model run under that emulator."""
    runner = bundle.manifest.get("runner")
    emulator = bundle.target.get("toolchain", {}).get("emulator")
    mismatch = _host_mismatch(bundle)
    if mismatch and emulator and bundle.target.get("device", {}).get("kind") == "cpu":
        if not runner:
            raise InputError(f"{bundle.source} is compiled for {mismatch[0]} and cannot be loaded"
                             f" on this machine ({mismatch[1]}), and it carries no runner to run"
                             " under the target's emulator — recompile it with this deepc")
        return EmulatedLibrary(bundle, str(runner))
    check_runnable_here(bundle)
    return NativeLibrary(bundle)


def _describe(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(str(s) for s in specs) or "nothing"


@dataclass(frozen=True)
class RunTimes:
    """Seconds of each timed run. Emulated runs ran under `emulator` on this machine: they
    check the code runs, and say nothing of how fast it runs on the device."""

    seconds: tuple[float, ...]
    emulated: bool = False
    emulator: str | None = None
    estimated: bool = False  # not timed: the device's latency estimated from the schedule


class Model:
    """A loaded CPU bundle: `run({name: array}) -> {name: array}`.

    A bundle for this machine runs in-process (NativeLibrary); one compiled for another
    architecture runs, transparently and slowly, under the emulator its target file names
    (runtime/emulated.py), where the target has one.
    """

    def __init__(self, bundle: BundleContents | str | os.PathLike[str]):
        self.bundle = bundle if isinstance(bundle, BundleContents) else read_bundle(bundle)
        self.inputs, self.outputs = self.bundle.inputs, self.bundle.outputs
        self._library = open_library(self.bundle)

    run_note: str | None = None  # how runs happen, where it needs saying (e.g. C simulation)

    @property
    def emulated(self) -> bool:
        """Whether runs go through an emulator (the bundle is for another architecture)."""
        return self._library.emulated

    @property
    def emulator(self) -> str | None:
        """The emulator command line emulated runs use, else None."""
        return self._library.emulator_text

    def _feed(self, spec: TensorSpec, value: Any) -> np.ndarray:
        array = np.asarray(value)
        want = np_dtype(spec.dtype)
        if tuple(array.shape) != spec.shape:
            shape = "x".join(map(str, array.shape)) or "scalar"
            raise ShapeError(f"input {spec.name!r} has shape {shape}, the model expects {spec}"
                             " — compile with --input-shape for another shape")
        if array.dtype != want and not np.can_cast(array.dtype, want, casting="safe"):
            raise ShapeError(f"input {spec.name!r} is {array.dtype}, the model expects"
                             f" {spec.dtype}, and converting could change values — convert it"
                             f" first, e.g. x.astype(np.{want.name})")
        # the kernels take native byte order (astype), C order and aligned elements
        return np.require(array.astype(want, copy=False), requirements="CA")

    def _prepare(self, inputs: Mapping[str, Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Checked, converted input arrays in model order, and fresh output arrays."""
        if not isinstance(inputs, Mapping):
            raise InputError("Model.run takes a dict of input name -> array; the model takes"
                             f" {_describe(self.inputs)}")
        names = [s.name for s in self.inputs]
        missing = [n for n in names if n not in inputs]
        unknown = sorted(set(inputs) - set(names))
        if missing or unknown:
            problem = (f"missing input(s) {', '.join(missing)}" if missing
                       else f"unknown input(s) {', '.join(unknown)}")
            raise InputError(f"{problem} — the model takes {_describe(self.inputs)}")
        feeds = [self._feed(spec, inputs[spec.name]) for spec in self.inputs]
        check_index_ranges(dict(zip(names, feeds)), self.manifest.get("input_bounds", {}))
        return feeds, [aligned_array(s.shape, np_dtype(s.dtype)) for s in self.outputs]

    def run(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the model on inputs by name; returns fresh output arrays by name."""
        feeds, outs = self._prepare(inputs)
        self._library.run(feeds, outs)
        return {spec.name: array for spec, array in zip(self.outputs, outs)}

    def time_runs(self, inputs: Mapping[str, Any], runs: int = 10,
                  warmup: int = 1) -> RunTimes:
        """The benchmark hook: time `runs` runs after `warmup` untimed ones.

        Native bundles are timed around each call; emulated ones by the runner itself inside
        one emulator process (start-up and translation excluded), and flagged `emulated`.
        """
        feeds, outs = self._prepare(inputs)
        seconds = self._library.time_runs(feeds, outs, max(int(runs), 1), max(int(warmup), 0))
        return RunTimes(tuple(seconds), self.emulated, self.emulator,
                        self._library.estimated)

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Seeded random inputs of the right shapes (index inputs kept in range)."""
        from deepc.runtime.inputs import bundle_inputs

        return bundle_inputs(self.bundle, seed)

    def set_num_threads(self, n: int) -> None:
        """Threads the kernels use (the caller included); 0 means all cores."""
        self._library.set_num_threads(n)

    @property
    def num_threads(self) -> int:
        return self._library.num_threads

    @property
    def manifest(self) -> dict[str, Any]:
        return self.bundle.manifest

    def __repr__(self) -> str:
        return (f"Model({str(self.bundle.source)!r}: {_describe(self.inputs)} ->"
                f" {_describe(self.outputs)}, target {self.bundle.target.get('name', '?')})")

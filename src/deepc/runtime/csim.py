"""FPGA bundles run as their C simulation: the HLS kernels, top and testbench built once with
g++ against the ap_types headers (cached by source hash), run on raw tensor files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from deepc.cache import atomic_output, cache_dir
from deepc.errors import DeepcError, ToolchainError
from deepc.runtime.ap_types import ap_types_dir
from deepc.runtime.bundle import BundleContents
from deepc.runtime.library import Library
from deepc.runtime.model import Model

CXXFLAGS = ("-std=c++14", "-O2", "-Wno-unknown-pragmas", "-Wno-uninitialized",
            "-Wno-maybe-uninitialized", "-Wno-unused-label")


def build_csim(root: Path, hls: dict[str, Any]) -> Path:
    """The testbench binary of the HLS sources under `root`, built on first use."""
    cxx = shutil.which("g++")
    if cxx is None:
        raise ToolchainError("C simulation needs g++ — install it (apt-get install g++)")
    sources = [root / hls["kernels"], root / hls["testbench"], root / hls["header"]]
    key = hashlib.sha256(b"".join([*(p.read_bytes() for p in sources),
                                   " ".join(CXXFLAGS).encode()])).hexdigest()[:24]
    binary = cache_dir("csim") / f"{key}"
    if binary.is_file():
        return binary
    include = ap_types_dir()
    with atomic_output(binary) as tmp:
        done = subprocess.run([cxx, *CXXFLAGS, "-isystem", str(include), "-I",
                               str(root / Path(hls["header"]).parent), "-o", str(tmp),
                               str(sources[0]), str(sources[1])],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = " | ".join(done.stderr.strip().splitlines()[-8:])
            raise ToolchainError(f"g++ failed to build the C simulation: {log}")
        tmp.chmod(0o755)
    return binary


class CsimLibrary(Library):
    """The NativeLibrary interface over the csim binary (one process per run)."""

    emulated = True
    estimated = True  # time_runs reports the schedule's estimate

    def __init__(self, bundle: BundleContents):
        self.bundle = bundle
        self.binary = build_csim(bundle.root, bundle.manifest["hls"])
        self.emulator_text = f"C simulation (g++ -O2, {self.binary.name})"

    def run(self, feeds: list[np.ndarray], outs: list[np.ndarray]) -> None:
        with tempfile.TemporaryDirectory(prefix="deepc-csim-") as tmp:
            ins = [Path(tmp) / f"in{i}.bin" for i in range(len(feeds))]
            outputs = [Path(tmp) / f"out{i}.bin" for i in range(len(outs))]
            for path, array in zip(ins, feeds):
                array.tofile(path)
            done = subprocess.run([str(self.binary), str(self.bundle.params_path),
                                   *map(str, ins), *map(str, outputs)],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DeepcError(f"the C simulation failed (exit {done.returncode}):"
                                 f" {done.stderr.strip()[-300:]}")
            for path, array in zip(outputs, outs):
                array[...] = np.fromfile(path, dtype=array.dtype).reshape(array.shape)

    def time_runs(self, feeds: list[np.ndarray], outs: list[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        """The estimate's latency at the target clock for every run: C simulation times say
        nothing of the device (the manifest's estimate is labelled as one)."""
        self.run(feeds, outs)
        seconds = self.bundle.manifest["estimate"]["latency_ms"] / 1e3
        return [seconds] * runs

    def set_num_threads(self, n: int) -> None:
        pass


class FpgaModel(Model):
    """An FPGA bundle: `run` C-simulates the accelerator on this machine."""

    def __init__(self, bundle: BundleContents):
        self.bundle = bundle
        self.inputs, self.outputs = bundle.inputs, bundle.outputs
        self._library = CsimLibrary(bundle)  # type: ignore[assignment]
        clock = bundle.manifest["estimate"]["clock_mhz"]
        self._library.emulator_text = f"the HLS schedule's latency estimate at {clock} MHz"
        self.run_note = (f"{bundle.source.name} is an FPGA bundle: it runs as the C simulation"
                         " of its HLS kernels (g++ with the ap_types headers) on this machine")

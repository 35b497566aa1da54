"""A wasm bundle run from Python: Node runs lib/model.mjs through runtime/wasm/driver.mjs.

Inputs and outputs travel as raw little-endian files in a temporary directory (wasm is
little-endian); the driver times each run itself, so Node's start-up and the compilation of
the module stay out of the times. No Python wasm engine is needed, only `node`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepc.cache import cache_dir
from deepc.errors import DeepcError, ToolchainError
from deepc.runtime.bundle import BundleContents, read_bundle
from deepc.runtime.library import Library
from deepc.runtime.model import Model
from deepc.runtime.wasm_assets import DRIVER

ORT_WEB = "onnxruntime-web@1.30"
# V8 compiles wasm with its baseline compiler first and optimises a function once it is hot;
# a kernel runs once a model run, so for many runs the times would be the baseline
# compiler's. Optimised code from the start, for deepc and onnxruntime-web alike.
NODE_FLAGS = ("--no-liftoff",)


def node_argv(target: dict[str, Any]) -> list[str]:
    """The target's `toolchain.runner` (node), checked to be installed."""
    toolchain = target.get("toolchain", {})
    runner = toolchain.get("runner")
    if not runner:
        raise ToolchainError(f"target {target.get('name', '?')!r} names no runner — add"
                             ' runner = "node" under [toolchain] in its target file')
    if shutil.which(runner) is None:
        package = toolchain.get("runner_package") or runner
        raise ToolchainError(f"{runner!r} (toolchain.runner of target {target.get('name')!r})"
                             f" is not installed — install it with `apt-get install {package}`")
    return [runner, *NODE_FLAGS]


def ort_web_dir() -> Path:
    """A folder with onnxruntime-web installed from npm (in the deepc cache; installed on
    first use, which needs npm and the network)."""
    where = cache_dir("npm", ORT_WEB.replace("@", "-"))
    if (where / "node_modules" / "onnxruntime-web" / "package.json").is_file():
        return where
    npm = shutil.which("npm")
    if npm is None:
        raise ToolchainError("--compare onnxruntime-web needs npm to install"
                             f" {ORT_WEB} — install it with `apt-get install npm`")
    done = subprocess.run([npm, "install", "--prefix", str(where), "--no-audit", "--no-fund",
                           ORT_WEB], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ToolchainError(f"npm could not install {ORT_WEB} into {where}: {tail}")
    return where


@dataclass(frozen=True)
class Peer:
    """onnxruntime-web running `onnx` beside deepc in the driver."""

    onnx: Path
    npm_dir: Path


class WasmLibrary(Library):
    """The bundle's model in a Node process a call; the interface Model expects."""

    def __init__(self, bundle: BundleContents):
        self.bundle = bundle
        self.node = node_argv(bundle.target)

    def drive(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
              warmup: int, peer: Peer | None = None,
              peer_outs: Sequence[np.ndarray] = ()) -> dict[str, Any]:
        """Run the driver; outs (and peer_outs) get the last run's results. Returns the
        driver's times in ms: {"deepc": [...], "peer": [...] or None}."""
        with tempfile.TemporaryDirectory(prefix="deepc-wasm-") as tmp:
            def files(prefix: str, n: int) -> list[str]:
                return [os.path.join(tmp, f"{prefix}{k}.bin") for k in range(n)]

            ins, out_files, peer_files = (files("in", len(feeds)), files("out", len(outs)),
                                          files("peer", len(peer_outs)))
            for array, file in zip(feeds, ins):
                array.astype(array.dtype.newbyteorder("<"), copy=False).tofile(file)
            argv = [*self.node, str(DRIVER), str(self.bundle.root), "--runs", str(runs),
                    "--warmup", str(warmup)]
            for flag, names in (("--in", ins), ("--out", out_files), ("--peer-out", peer_files)):
                for name in names:
                    argv += [flag, name]
            if peer is not None:
                argv += ["--peer", str(peer.npm_dir), "--onnx", str(peer.onnx)]
            stdout = self._invoke(argv)
            for array, file in [*zip(outs, out_files), *zip(peer_outs, peer_files)]:
                raw = np.fromfile(file, dtype=array.dtype.newbyteorder("<"))
                array[...] = raw.reshape(array.shape)
        return json.loads(stdout.strip().splitlines()[-1])

    def _invoke(self, argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as e:
            raise ToolchainError(f"cannot run {argv[0]!r} for {self.bundle.source}:"
                                 f" {e.strerror}") from e
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            errors = [line.strip()[:500] for line in lines if "Error" in line]
            log = errors[-1] if errors else " | ".join(lines[-5:]) or "no message"
            raise DeepcError(f"{self.bundle.source}: the wasm model failed in"
                             f" {argv[0]} (exit {done.returncode}): {log}")
        return done.stdout

    def time_runs(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        return [ms / 1e3 for ms in self.drive(feeds, outs, runs, warmup)["deepc"]]

    def run(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        self.drive(feeds, outs, 1, 0)

    def set_num_threads(self, n: int) -> None:
        del n  # one thread: the module has no pool


class WasmModel(Model):
    """A loaded wasm bundle: `run({name: array}) -> {name: array}`, each call in Node."""

    def __init__(self, bundle: BundleContents | str | os.PathLike[str]):
        self.bundle = bundle if isinstance(bundle, BundleContents) else read_bundle(bundle)
        self.inputs, self.outputs = self.bundle.inputs, self.bundle.outputs
        self._library = WasmLibrary(self.bundle)  # type: ignore[assignment]

    def time_with_peer(self, inputs: dict[str, Any], onnx: Path, runs: int,
                       warmup: int) -> tuple[list[float], list[float], dict[str, np.ndarray],
                                             list[np.ndarray]]:
        """deepc and onnxruntime-web interleaved in one Node process on the same inputs:
        seconds per run of each, deepc's outputs by name and onnxruntime-web's in order."""
        feeds, outs = self._prepare(inputs)
        theirs = [np.empty_like(a) for a in outs]
        times = self._library.drive(feeds, outs, runs, warmup,  # type: ignore[attr-defined]
                                    Peer(Path(onnx).resolve(), ort_web_dir()), theirs)
        ours = {spec.name: a for spec, a in zip(self.outputs, outs)}
        return [t / 1e3 for t in times["deepc"]], [t / 1e3 for t in times["peer"]], ours, theirs

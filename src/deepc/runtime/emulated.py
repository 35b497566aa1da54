"""Running a foreign-architecture bundle here: its bin/run_model under the target's emulator.

The runner is the bundle's C example prebuilt for the target (see c_example.py); inputs and
outputs travel as raw files in a temporary directory, and the runner times each run itself,
so emulator start-up and code translation stay out of the times it reports.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepc.errors import DeepcError, ToolchainError
from deepc.runtime.bundle import BundleContents
from deepc.runtime.library import Library
from deepc.runtime.native import run_failed

_RUN_LINE = re.compile(r"^run \d+ ([0-9.eE+-]+) ms$", re.M)
_FAILED = re.compile(r"deepc_run returned (-?\d+)")
_THREADS = re.compile(r"^threads (\d+)$", re.M)
_SIGILL = 4


def emulator_argv(target: Mapping[str, Any]) -> list[str]:
    """The target's `toolchain.emulator` as argv, checked to be installed with its sysroot."""
    name = target.get("name", "?")
    toolchain = target.get("toolchain", {})
    text = toolchain.get("emulator")
    if not text:
        raise ToolchainError(f"target {name!r} names no emulator — add emulator = \"...\" under"
                             " [toolchain] in its target file, or run the bundle on the device")
    argv = shlex.split(text)
    if shutil.which(argv[0]) is None:
        package = toolchain.get("emulator_package")
        todo = (f"install it with `apt-get install {package}`" if package
                else "install it, or point toolchain.emulator of the target file at one")
        raise ToolchainError(f"emulator {argv[0]!r} (toolchain.emulator of target {name!r}) is"
                             f" not installed — {todo}")
    sysroot = next((argv[k + 1] for k, a in enumerate(argv[:-1]) if a == "-L"), None)
    if sysroot and not Path(sysroot).is_dir():
        # the target's C library (no compiler needed), which a gcc cross compiler pulls in too
        package = toolchain.get("sysroot_package") or toolchain.get("cc_package")
        todo = (f"install it with `apt-get install {package}`" if package
                else "install the target's C library there")
        raise ToolchainError(f"the emulator's sysroot {sysroot} (-L in toolchain.emulator of"
                             f" target {name!r}) is missing — {todo}")
    return argv


def byte_order(triple: str) -> str:
    """numpy's byte-order mark for a triple's architecture (armeb, aarch64_be are big-endian)."""
    arch = triple.split("-", 1)[0].lower()
    return ">" if arch.endswith(("eb", "_be")) else "<"


class EmulatedLibrary(Library):
    """A bundle's model run through bin/run_model under the target's emulator, one process a
    run (so runs may overlap: each has its own files and workspace)."""

    emulated = True

    def __init__(self, bundle: BundleContents, runner: str):
        self.bundle = bundle
        self.emulator = emulator_argv(bundle.target)
        self.runner = bundle.file(runner)
        if not self.runner.is_file():
            raise DeepcError(f"{bundle.source}: {runner} is missing — recompile the model")
        # bundles keep bin/ at 0755, but older ones did not, and qemu-user refuses a file
        # without an execute bit
        if not os.access(self.runner, os.X_OK):
            self.runner.chmod(0o755)
        self.order = byte_order(bundle.triple or "")
        self._threads = 0

    @property
    def emulator_text(self) -> str:
        return shlex.join(self.emulator)

    def _invoke(self, *args: str) -> str:
        argv = [*self.emulator, str(self.runner), *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as e:
            raise ToolchainError(f"cannot run {self.emulator[0]!r} for"
                                 f" {self.bundle.source}: {e.strerror}") from e
        failed = _FAILED.search(done.stderr)
        if done.returncode == 1 and failed:
            raise run_failed(self.bundle.source, int(failed.group(1)))
        if done.returncode == -_SIGILL:
            raise DeepcError(f"{self.bundle.source}: illegal instruction under"
                             f" `{self.emulator_text}` — the emulated CPU lacks an instruction"
                             " the code uses; name a newer one (e.g. -cpu max) in the target's"
                             " toolchain.emulator")
        if done.returncode != 0:
            log = " | ".join(done.stderr.strip().splitlines()[-5:]) or "no message"
            how = (f"signal {-done.returncode}" if done.returncode < 0
                   else f"exit {done.returncode}")
            raise DeepcError(f"{self.bundle.source}: {self.runner.name} failed under"
                             f" `{self.emulator_text}` ({how}): {log}")
        return done.stdout

    def time_runs(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        """Run `warmup` + `runs` times in one emulator process; outs get the last run's results.
        Returns the runner's own timing of each timed run, in seconds."""
        with tempfile.TemporaryDirectory(prefix="deepc-emulated-") as tmp:
            ins = [os.path.join(tmp, f"in{k}.bin") for k in range(len(feeds))]
            out_files = [os.path.join(tmp, f"out{k}.bin") for k in range(len(outs))]
            for array, file in zip(feeds, ins):
                array.astype(array.dtype.newbyteorder(self.order), copy=False).tofile(file)
            threads = ["-t", str(self._threads)] if self._threads else []
            stdout = self._invoke("-n", str(runs), "-w", str(warmup), *threads,
                                  str(self.bundle.params_path), *ins, *out_files)
            for array, file in zip(outs, out_files):
                raw = np.fromfile(file, dtype=array.dtype.newbyteorder(self.order))
                array[...] = raw.reshape(array.shape)
        return [float(ms) / 1e3 for ms in _RUN_LINE.findall(stdout)]

    def run(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        self.time_runs(feeds, outs, 1, 0)

    def set_num_threads(self, n: int) -> None:
        self._threads = max(int(n), 0)

    @property
    def num_threads(self) -> int:
        if self._threads:
            return self._threads
        found = _THREADS.search(self._invoke("-i"))
        return int(found.group(1)) if found else 1


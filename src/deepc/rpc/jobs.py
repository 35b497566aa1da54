"""A board's jobs: the FIFO queue that lets one run at a time, and each job in a subprocess.

The server's cache directory holds everything a job writes:

```
tars/<sha256>.tar   accepted bundles, named by the server's own hash of the bytes
bundles/            their checked extractions (read_bundle, DEEPC_CACHE_DIR points here)
incoming/           uploads being received
jobs/<id>/          one job's inputs, outputs and result.json, removed when it ends
tmp/                TMPDIR of the jobs (the emulated runner's files)
```
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepc.cache_evict import ENV as CACHE_BOUND_ENV
from deepc.rpc.errors import BusyError, JobTimeoutError, RemoteJobError
from deepc.rpc.worker import JOB, RESULT


class JobQueue:
    """One job at a time, the rest waiting first come first served: at most `length` wait,
    each for at most its `wait` seconds, else BusyError."""

    def __init__(self, length: int):
        self.length = length
        self._lock = threading.Lock()
        self._busy = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    @contextlib.contextmanager
    def slot(self, wait: float) -> Iterator[None]:
        with self._lock:
            turn = None
            if not self._busy:
                self._busy = True
            elif len(self._waiters) >= self.length:
                raise BusyError(f"the board is busy: {len(self._waiters)} jobs already wait"
                                " for it — try again later, or add boards behind a tracker")
            else:
                turn = threading.Event()
                self._waiters.append(turn)
        if turn is not None and not turn.wait(wait):
            with self._lock:
                if not turn.is_set():  # else it was handed over just as the wait ran out
                    self._waiters.remove(turn)
                    raise BusyError(f"the board stayed busy for {wait:g} s while this job"
                                    " waited — try again later, or add boards behind a"
                                    " tracker")
        try:
            yield
        finally:
            with self._lock:
                if self._waiters:
                    self._waiters.popleft().set()  # the board passes on, still busy
                else:
                    self._busy = False

    @property
    def waiting(self) -> int:
        return len(self._waiters)


@dataclass(frozen=True)
class JobResult:
    header: dict[str, Any]
    outputs: dict[str, np.ndarray]


def _how(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"signal {-rc}"
    return f"exit {rc}"


class JobRunner:
    """Starts `python -m deepc.rpc.worker` per job in its own session, under a time-out."""

    def __init__(self, cache: Path, timeout_s: float, emulator: bool):
        self.cache = cache
        self.timeout_s = timeout_s
        self.emulator = emulator
        for sub in ("tars", "incoming", "jobs", "tmp"):
            (cache / sub).mkdir(parents=True, exist_ok=True)
        # the board bounds its own bundles (evict below): the deepc cache bound stays off
        self.env = {**os.environ, "DEEPC_CACHE_DIR": str(cache), "TMPDIR": str(cache / "tmp"),
                    CACHE_BOUND_ENV: "0"}

    def tar(self, sha256: str) -> Path:
        return self.cache / "tars" / f"{sha256}.tar"

    def evict(self, budget_bytes: int, keep: str) -> list[str]:
        """Drop the least recently used bundles (tar and extraction) until what is left fits
        `budget_bytes`; never `keep`. Call it holding the queue: no job may be using them."""
        tars = sorted(self.cache.glob("tars/*.tar"), key=lambda p: p.stat().st_mtime)
        # the extraction is about as big as the tar
        used = sum(2 * p.stat().st_size for p in tars)
        dropped = []
        for tar in tars:
            if used <= budget_bytes:
                break
            if tar.stem == keep:
                continue
            used -= 2 * tar.stat().st_size
            tar.unlink()
            shutil.rmtree(self.cache / "bundles" / tar.stem[:32], ignore_errors=True)
            dropped.append(tar.stem)
        return dropped

    def run(self, action: str, sha256: str, inputs: Mapping[str, np.ndarray] | None = None,
            **options: Any) -> JobResult:
        os.utime(self.tar(sha256))  # recently used: evicted last
        job_dir = Path(tempfile.mkdtemp(dir=self.cache / "jobs"))
        try:
            files = {}
            for k, (name, array) in enumerate((inputs or {}).items()):
                np.save(job_dir / f"in{k}.npy", array, allow_pickle=False)
                files[name] = f"in{k}.npy"
            job = {"action": action, "bundle": str(self.tar(sha256)), "inputs": files,
                   "emulator": self.emulator, **options}
            (job_dir / JOB).write_text(json.dumps(job))
            self._start(job_dir)
            result = json.loads((job_dir / RESULT).read_text())
            if not result.pop("ok"):
                raise RemoteJobError(f"remote: {result['message']}")
            outputs = {name: np.load(job_dir / file, allow_pickle=False)
                       for name, file in result.pop("files", {}).items()}
            return JobResult(result, outputs)
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def _start(self, job_dir: Path) -> None:
        argv = [sys.executable, "-m", "deepc.rpc.worker", str(job_dir)]
        proc = subprocess.Popen(argv, env=self.env, cwd=job_dir, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            # the session holds the worker and what it started (the emulator): end them all
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise JobTimeoutError(f"the job ran past the server's {self.timeout_s:g} s"
                                  " time-out and was stopped") from None
        if proc.returncode != 0 or not (job_dir / RESULT).is_file():
            tail = " | ".join(err.decode(errors="replace").strip().splitlines()[-3:])
            raise RemoteJobError(f"remote: the job crashed ({_how(proc.returncode)})"
                                 f"{': ' + tail if tail else ''}; the server goes on serving")

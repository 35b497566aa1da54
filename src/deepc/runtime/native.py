"""A CPU bundle's library loaded into this process with ctypes."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepc.errors import BundleError, DeepcError
from deepc.runtime.bundle import BundleContents
from deepc.runtime.library import Library
from deepc.runtime.memory import ALIGN, HUGE_PAGE, aligned_empty, huge_empty, read_huge
from deepc.runtime.timing import time_calls


def run_failed(source: Path, rc: int) -> DeepcError:
    return DeepcError(f"{source}: deepc_run returned {rc} — the compiled model failed; report"
                      " it with the bundle attached")


class NativeLibrary(Library):
    """lib/model.so loaded with ctypes: `deepc_run` gets the params (mapped from params.bin)
    and one workspace allocated here; runs are serialised by a lock as they share it."""

    def __init__(self, bundle: BundleContents):
        self.bundle = bundle
        self._lib = self._load_library(bundle.library)
        self._params = self._map_params()
        self._workspace = huge_empty(bundle.workspace_bytes)
        self._in_ptrs = (ctypes.c_void_p * max(len(bundle.inputs), 1))()
        self._out_ptrs = (ctypes.c_void_p * max(len(bundle.outputs), 1))()
        self._lock = threading.Lock()

    def _load_library(self, path: Path) -> ctypes.CDLL:
        try:
            lib = ctypes.CDLL(str(path))
            run = lib.deepc_run
        except (OSError, AttributeError) as e:
            raise BundleError(f"{self.bundle.source}: cannot load lib/model.so ({e}) — recompile"
                              " the model for this machine") from e
        run.argtypes = [ctypes.c_void_p] * 4
        run.restype = ctypes.c_int32
        return lib

    def _map_params(self) -> np.ndarray:
        path, size = self.bundle.params_path, self.bundle.params_bytes
        if path.stat().st_size != size:
            raise BundleError(f"{self.bundle.source}: params.bin holds {path.stat().st_size}"
                              f" bytes, the manifest says {size} — recompile the model")
        if size == 0:
            return aligned_empty(0)
        if size >= HUGE_PAGE:  # read once into huge pages: weights stream faster from them
            return read_huge(path, size)
        # a private mapping: pages load lazily, and a stray write could never reach the file
        params = np.memmap(path, dtype=np.uint8, mode="c", shape=(size,))
        assert params.ctypes.data % ALIGN == 0  # mappings start on a page
        return params

    def run(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray]) -> None:
        with self._lock:
            for k, array in enumerate(feeds):
                self._in_ptrs[k] = array.ctypes.data
            for k, array in enumerate(outs):
                self._out_ptrs[k] = array.ctypes.data
            rc = self._lib.deepc_run(self._in_ptrs, self._out_ptrs, self._params.ctypes.data,
                                     self._workspace.ctypes.data)
        if rc != 0:
            raise run_failed(self.bundle.source, rc)

    def time_runs(self, feeds: Sequence[np.ndarray], outs: Sequence[np.ndarray], runs: int,
                  warmup: int) -> list[float]:
        return time_calls(lambda: self.run(feeds, outs), runs, warmup)

    def set_num_threads(self, n: int) -> None:
        self._lib.deepc_set_num_threads(ctypes.c_int32(int(n)))

    @property
    def num_threads(self) -> int:
        return int(self._lib.deepc_get_num_threads())

"""The wasm backend registered: the LLVM backend's schedules and code for a wasm32 target.

The target file gives the triple (wasm32-unknown-unknown), cpu `generic` and +simd128, and
one core, so the CPU default schedules vectorise for 128 bits and emit no parallel loops
(a tuned schedule that has one still runs: the wasm runtime's `deepc_parallel_for` runs the
whole range on the caller). The object code is linked with the wasm runtime by wasm-ld in
the packager (link.py).
"""

from __future__ import annotations

from deepc.backends.base import BACKENDS
from deepc.backends.llvm.backend import LlvmBackend


class WasmBackend(LlvmBackend):
    name = "wasm"


BACKENDS.add("wasm", WasmBackend())

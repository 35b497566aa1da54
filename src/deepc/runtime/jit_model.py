"""Run a compiled model in this process through LLVM's JIT (no toolchain, no bundle)."""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepc.ir.types import np_dtype
from deepc.ops.interpreter import check_inputs
from deepc.runtime.memory import aligned_empty


class JitModel:
    def __init__(self, compiled: Any):
        import llvmlite.binding as llvm

        from deepc.backends.llvm.machine import JitModule

        self.graph = compiled.graph
        self._jit = JitModule(llvm.parse_assembly(compiled.module.source))
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * 4))
        self._run = proto(self._jit.address("deepc_run"))
        params = compiled.params()
        self._params = aligned_empty(len(params))
        self._params[:len(params)] = np.frombuffer(params, np.uint8)
        self._workspace = aligned_empty(compiled.plan.workspace_bytes)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = check_inputs(self.graph, inputs)
        ins = [np.ascontiguousarray(feeds[n]) for n in self.graph.inputs]
        outs = [np.empty(self.graph.types[n].shape, np_dtype(self.graph.types[n].dtype))
                for n in self.graph.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[a.ctypes.data for a in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[a.ctypes.data for a in outs])
        rc = self._run(ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs),
                       self._params.ctypes.data, self._workspace.ctypes.data)
        if rc != 0:
            from deepc.errors import DeepcError

            raise DeepcError(f"deepc_run returned {rc}")
        return dict(zip(self.graph.outputs, outs))

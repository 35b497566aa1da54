"""ONNX backend API (`onnx.backend.base.Backend`) over deepc's compiled path.

`prepare` imports the model and compiles it for the host with the LLVM backend; `run`
executes the native code. The numpy interpreter is never used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep


class DeepcRep(BackendRep):
    def __init__(self, model: onnx.ModelProto, opt_level: int = 2):
        self.model = model
        self.opt_level = opt_level
        self._compiled: dict[tuple[tuple[int, ...], ...], Any] = {}

    def _inputs(self) -> list[str]:
        inits = {t.name for t in self.model.graph.initializer}
        return [vi.name for vi in self.model.graph.input if vi.name not in inits]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        from deepc.compiler.pipeline import compile
        from deepc.frontends.onnx import convert
        from deepc.runtime.jit_model import JitModel

        names = self._inputs()
        if isinstance(inputs, dict):
            arrays = [np.asarray(inputs[n]) for n in names]
        elif isinstance(inputs, np.ndarray | list | tuple) and not isinstance(inputs, np.ndarray):
            arrays = [np.asarray(x) for x in inputs]
        else:
            arrays = [np.asarray(inputs)]
        key = tuple(tuple(a.shape) for a in arrays)
        if key not in self._compiled:
            graph = convert(self.model, {n: a.shape for n, a in zip(names, arrays)})
            self._compiled[key] = JitModel(compile(graph, "host", opt_level=self.opt_level))
        out = self._compiled[key].run(dict(zip(names, arrays)))
        return tuple(out.values())


class DeepcBackend(Backend):
    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        return device == "CPU"

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> DeepcRep:
        super().prepare(model, device, **kwargs)
        return DeepcRep(model, kwargs.get("opt_level", 2))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                 outputs_info: Any = None, **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("deepc compiles whole models; use run_model")


prepare = DeepcBackend.prepare
run_model = DeepcBackend.run_model
supports_device = DeepcBackend.supports_device

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
        self._compiled: dict[Any, Any] = {}
        self._frozen: set[str] = set()

    def _inputs(self) -> list[str]:
        inits = {t.name for t in self.model.graph.initializer}
        return [vi.name for vi in self.model.graph.input if vi.name not in inits]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        from deepc.compiler.pipeline import compile
        from deepc.runtime.jit_model import JitModel

        names = self._inputs()
        if isinstance(inputs, dict):
            arrays = [np.asarray(inputs[n]) for n in names]
        elif isinstance(inputs, np.ndarray | list | tuple) and not isinstance(inputs, np.ndarray):
            arrays = [np.asarray(x) for x in inputs]
        else:
            arrays = [np.asarray(inputs)]
        feeds = dict(zip(names, arrays))
        key = (tuple(tuple(a.shape) for a in arrays),
               tuple((n, feeds[n].tobytes()) for n in sorted(self._frozen)))
        if key not in self._compiled:
            graph = self._convert(feeds)
            self._compiled[key] = JitModel(compile(graph, "host", opt_level=self.opt_level))
        out = self._compiled[key].run({n: a for n, a in feeds.items() if n not in self._frozen})
        return tuple(out.values())

    def _convert(self, feeds: dict[str, np.ndarray]) -> Any:
        """Import for these input shapes. Inputs that fix shapes (axes, pads, sizes) are
        specialised to their values, as a static-shape compiler must; the compiled model is
        cached per those values."""
        from deepc.errors import NeedsConstantError
        from deepc.frontends.onnx import convert

        while True:
            model = with_constant_inputs(self.model, {n: feeds[n] for n in self._frozen})
            try:
                return convert(model, {n: a.shape for n, a in feeds.items()
                                       if n not in self._frozen})
            except NeedsConstantError as exc:
                needed = input_ancestors(self.model, exc.value) - self._frozen
                if not needed:
                    raise
                self._frozen |= needed


def with_constant_inputs(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    if not values:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [vi for vi in out.graph.input if vi.name not in values]
    del out.graph.input[:]
    out.graph.input.extend(kept)
    out.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(v), n)
                                 for n, v in values.items())
    return out


def input_ancestors(model: onnx.ModelProto, value: str) -> set[str]:
    """Graph inputs that `value` is computed from."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inputs = {vi.name for vi in model.graph.input}
    found, stack, seen = set(), [value], set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in inputs:
            found.add(v)
        elif v in producers:
            stack.extend(i for i in producers[v].input if i)
    return found


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

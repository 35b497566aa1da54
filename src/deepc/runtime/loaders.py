"""RUNTIMES: device kind -> the Model class that loads and runs a bundle of that kind."""

from __future__ import annotations

import os
from collections.abc import Callable

from deepc.errors import BundleError
from deepc.registry import NotRegisteredError, Registry
from deepc.runtime.bundle import BundleContents, read_bundle
from deepc.runtime.csim import FpgaModel
from deepc.runtime.cuda_model import CudaModel
from deepc.runtime.model import Model
from deepc.runtime.opencl_model import OpenCLModel
from deepc.runtime.wasm_model import WasmModel

Loader = Callable[[BundleContents], Model]
RUNTIMES: Registry[Loader] = Registry("runtime")
RUNTIMES.add("cpu", Model)
RUNTIMES.add("cuda", CudaModel)  # pycuda is imported only when a CUDA bundle loads
RUNTIMES.add("opencl", OpenCLModel)  # pyopencl likewise
RUNTIMES.add("wasm", WasmModel)  # runs in Node (toolchain.runner)
RUNTIMES.add("fpga", FpgaModel)  # C simulation: g++ with the ap_types headers


def load(path: str | os.PathLike[str] | BundleContents) -> Model:
    """A bundle loaded by the runtime of its device kind."""
    bundle = path if isinstance(path, BundleContents) else read_bundle(path)
    kind = bundle.target.get("device", {}).get("kind", "cpu")
    try:
        loader = RUNTIMES.get(kind)
    except NotRegisteredError:
        raise BundleError(f"{bundle.source} is a bundle for {kind} devices, which this deepc"
                          f" cannot run (it runs {', '.join(RUNTIMES)} bundles)") from None
    return loader(bundle)

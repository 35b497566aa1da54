"""Benchmark peers on the GPU: a CUDA bundle's kernels against PyTorch on the same device.

Both sides keep their inputs on the device and are timed to the end of the GPU work, run
alternately. PyTorch runs the model named like the ONNX file: the zoo model of that name
(runtime/zoo.py, the table tools/zoo.py exports from), else the torchvision constructor. Its
weights are random, which does not change the work done. It runs in eager mode and, where it
works, `torch.compile(mode="reduce-overhead")` (CUDA graphs). Strict fp32 unless
`allow_tf32`: cuDNN and cuBLAS may not use TF32 tensor cores; with it, torch's defaults
(cuDNN convolutions on TF32, matmuls strict) against deepc's TF32 mma kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deepc.errors import DeepcError
from deepc.runtime.zoo import example_input, library, zoo_model


def torch_peers(name: str, shape: tuple[int, ...], allow_tf32: bool,
                with_compile: bool = True) -> dict[str, Callable[[], Any]]:
    """Timed callables by peer name ("torch", "torch.compile")."""
    torch = library("torch")
    if not torch.cuda.is_available():
        raise DeepcError("--compare torch needs a CUDA GPU visible to torch")
    entry = zoo_model(name)  # before the settings below: an unknown name changes nothing
    # set both ways: an earlier strict call in the same process must not leak into this one
    torch.backends.cudnn.allow_tf32 = allow_tf32  # torch's default: True
    torch.backends.cuda.matmul.allow_tf32 = False  # torch's default
    model = entry.build().eval().cuda()
    x = example_input(entry, shape, "cuda")

    def run(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> None:
            with torch.no_grad():
                fn(x)
            torch.cuda.synchronize()
        return call

    peers = {"torch": run(model)}
    if with_compile:
        try:
            compiled = torch.compile(model, mode="reduce-overhead")
            call = run(compiled)
            for _ in range(3):  # compiles, records the graph
                call()
            peers["torch.compile"] = call
        except Exception:  # inductor needs a working toolchain; eager remains
            pass
    return peers


def device_runner(model: Any, feeds: dict[str, Any]) -> Callable[[], None]:
    """A CudaModel's kernels alone on inputs already uploaded (as torch is timed)."""
    lib = model._library
    model.run(feeds)

    def call() -> None:
        lib.execute()
        lib.stream.synchronize()

    return call

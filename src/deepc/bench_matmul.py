"""The matmul micro-benchmark: GFLOP/s of deepc's compiled n x n x n MatMul beside numpy's
BLAS, interleaved in one process (`deepc bench --matmul N`)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from deepc.bench import interleaved


def matmul_model(n: int) -> Any:
    """An n x n x n float32 MatMul as an ONNX model."""
    from onnx import TensorProto, helper

    tensor = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], f"matmul{n}",
        [tensor("a", TensorProto.FLOAT, [n, n]), tensor("b", TensorProto.FLOAT, [n, n])],
        [tensor("c", TensorProto.FLOAT, [n, n])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def bench_matmul(n: int = 1024, *, threads: int = 1, runs: int = 10, warmup: int = 2,
                 target: Any = "host") -> dict[str, Any]:
    """GFLOP/s of deepc's compiled n^3 matmul and of numpy's (BLAS), interleaved, both on
    `threads` threads (0: all cores; numpy's BLAS is limited through threadpoolctl)."""
    import tempfile

    from threadpoolctl import threadpool_limits

    import deepc
    from deepc.frontends.onnx import convert

    compiled = deepc.compile(convert(matmul_model(n)), target)
    with tempfile.TemporaryDirectory(prefix="deepc-bench-") as tmp:
        model = deepc.load(compiled.save(Path(tmp) / "mm.tar"))
    model.set_num_threads(threads)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    feeds = {"a": a, "b": b}
    with threadpool_limits(limits=threads or None, user_api="blas"):
        # OpenBLAS workers busy-wait a while after a call: let them park before deepc runs
        times = interleaved([lambda: model.run(feeds), lambda: a @ b], runs, warmup, settle_s=0.1)
    flops = 2 * n ** 3
    ours, theirs = (flops / statistics.median(t) / 1e9 for t in times)
    ok = bool(np.allclose(model.run(feeds)["c"], a @ b, rtol=1e-3, atol=1e-2))
    return {"n": n, "threads": threads, "deepc_gflops": round(ours, 1),
            "numpy_gflops": round(theirs, 1), "fraction_of_numpy": round(ours / theirs, 3),
            "outputs_match": ok}

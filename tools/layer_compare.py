"""Where a model's time goes, per layer kind, in deepc and in onnxruntime at 1 thread: deepc's
kernels timed one by one in plan order (as a run calls them, so each meets the caches the one
before left), onnxruntime's nodes by its own profiler; each kernel or node is filed under the
kind of the ONNX node it computes (a 1x1 or 3x3 conv, a depthwise 3x3 or 5x5, an SE block's
1x1-pixel conv, a pool...). Prints the 10th-percentile ms per kind, then with -v the kernels
that lose most to their onnxruntime nodes.

    python tools/layer_compare.py ../shared/models/efficientnet_b0.onnx [--log tune.jsonl] -v
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

import deepc
from deepc.bench import onnxruntime_session
from deepc.runtime.inputs import random_inputs
from deepc.runtime.profile import kernel_calls
from deepc.target import load_target
from deepc.tune.log import best_knobs

FIRST = ["dwconv3x3", "dwconv5x5", "conv1x1", "conv3x3", "conv5x5", "conv7x7", "se_fc", "Gemm",
         "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "Concat"]  # a kernel's kind


def node_kinds(model: onnx.ModelProto) -> dict[str, str]:
    """Each ONNX node's kind: convs by kernel size, depthwise or on one pixel; others by op."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    weights = {i.name: list(i.dims) for i in model.graph.initializer}

    def kind(n: onnx.NodeProto) -> str:
        if n.op_type != "Conv" or n.input[1] not in weights:
            return n.op_type
        w = weights[n.input[1]]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        size = "x".join(map(str, w[2:]))
        if group > 1 and group == w[0]:
            return f"dwconv{size}"
        return "se_fc" if shapes.get(n.output[0], [])[2:] == [1, 1] else f"conv{size}"

    return {n.name: kind(n) for n in model.graph.node}


def ort_node_times(model: onnx.ModelProto, trace: list[dict[str, Any]]
                   ) -> dict[tuple[str, str], list[float]]:
    """onnxruntime's kernel times (ms) per (ONNX node, its own node): its nodes are named
    after their outputs (a fused conv after its activation's), so each is traced back to the
    conv it computes."""
    producer = {o: n for n in model.graph.node for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name = e["name"].removesuffix("_kernel_time")
        op = e["args"].get("op_name", "")
        node = producer.get(name.removesuffix("_nchwc")) or by_name.get(name)
        while node is not None and op in ("Conv", "FusedConv") and node.op_type != "Conv":
            node = producer.get(node.input[0])
        out[node.name if node is not None else f"({op})", name].append(e["dur"] / 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--log", help="a tuning log to apply")
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("-v", action="store_true", help="also the kernels that lose most")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    onnx_model = onnx.load(str(args.model))
    kinds = node_kinds(onnx_model)
    host = load_target("host")
    compiled = deepc.compile(args.model, host,
                             tuned=best_knobs(args.log, host, 1) if args.log else None)
    feeds = random_inputs(compiled.graph, 0)
    with tempfile.TemporaryDirectory() as tmp:
        model = deepc.load(compiled.save(Path(tmp) / "m.tar"))
        model.set_num_threads(1)
        ort = onnxruntime_session(args.model, 1, Path(tmp) / "ort")
        calls = kernel_calls(model, compiled, feeds)
        ours: list[list[float]] = [[] for _ in calls.calls]
        for _ in range(args.runs):
            ort.run(None, feeds)
            for k, call in enumerate(calls.calls):
                start = time.perf_counter()
                call()
                ours[k].append((time.perf_counter() - start) * 1e3)
        theirs = ort_node_times(onnx_model, json.loads(Path(ort.end_profiling()).read_text()))

    def low(t: list[float]) -> float:
        return float(np.percentile(t, 10))

    def kernel_kind(nodes: tuple[str, ...]) -> str:
        found = [kinds.get(n.split(":")[0], "layout") for n in nodes]
        return next((k for k in FIRST if k in found), "+".join(sorted(set(found))))

    per_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    rows = []
    for kern, times in zip(compiled.plan.calls, ours):
        kind = kernel_kind(kern.nodes)
        per_kind[kind][0] += low(times)
        peer = sum(low(t) for (n, _), t in theirs.items() if n in kern.nodes
                   and kinds[n].startswith(("conv", "dwconv", "se_fc")))
        rows.append((low(times) - peer, kern.name, kind, low(times), peer))
    for (node, _), times in theirs.items():
        per_kind[kinds.get(node, node)][1] += low(times)
    print(f"{args.model.stem} ({'tuned' if args.log else 'untuned'}), 1 thread, 10th-percentile"
          f" ms of {args.runs} runs; load {os.getloadavg()[0]:.1f}")
    print(f"{'kind':24s} {'deepc':>8s} {'onnxruntime':>12s}")
    for kind, (a, b) in sorted(per_kind.items(), key=lambda kv: -sum(kv[1])):
        print(f"{kind:24s} {a:8.3f} {b:12.3f}")
    print(f"{'total':24s} {sum(v[0] for v in per_kind.values()):8.3f}"
          f" {sum(v[1] for v in per_kind.values()):12.3f}")
    if args.v:
        print("kernels against the onnxruntime convs they compute (its activations apart):")
        for diff, name, kind, a, b in sorted(rows, reverse=True)[:20]:
            print(f"  {name[:44]:44s} {kind:12s} {a:7.3f} {b:7.3f} {diff:+.3f}")


if __name__ == "__main__":
    main()

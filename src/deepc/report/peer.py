"""onnxruntime's own per-node profile of a model (its Chrome-trace JSON from
SessionOptions.enable_profiling) into per-node times to set beside deepc's kernels."""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepc.bench import onnxruntime_session
from deepc.report.kinds import kind_of

NODE_SUFFIX = "_kernel_time"  # onnxruntime names a node's event "<node>_kernel_time"


def onnxruntime_nodes(path: Path, feeds: Mapping[str, np.ndarray], runs: int, warmup: int,
                      threads: int) -> list[dict[str, Any]]:
    """Per node onnxruntime ran (after its own fusions): its name, op, kind, and the median
    of its time over `runs` runs after `warmup` ones, in milliseconds, in run order."""
    with tempfile.TemporaryDirectory(prefix="deepc-ort-profile-") as tmp:
        session = onnxruntime_session(path, threads, Path(tmp) / "ort")
        for _ in range(warmup + runs):
            session.run(None, dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
    return node_times(events, warmup)


def node_times(events: list[dict[str, Any]], skip: int) -> list[dict[str, Any]]:
    """Node events grouped by node, the first `skip` runs of each left out."""
    durations: dict[str, list[float]] = {}
    ops: dict[str, str] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith(NODE_SUFFIX):
            continue
        name = e["name"].removesuffix(NODE_SUFFIX)
        durations.setdefault(name, []).append(float(e["dur"]) / 1e3)
        ops[name] = str(e.get("args", {}).get("op_name", "?"))
    rows = []
    for name, ms in durations.items():
        timed = ms[skip:] or ms
        rows.append({"node": name, "op": ops[name], "kind": kind_of(ops[name]),
                     "ms": statistics.median(timed)})
    return rows

"""deepc's int8 bundles against its fp32 bundles of the same shared models (#24's "1.8x
deepc fp32" figure): both compiled by this tree, loaded in one process and timed alternately
at one thread (CPU-time medians, so time the machine's other work kept a run off its core
is left out). Prints one line per model and the geomean speed-up, with the load average.

    python -m tools.int8_speedup [--runs 40] [MODEL ...]   (from the repository root)

The quantised models are those `python -m tests.e2e.quantized` builds into
.deepc-cache/quantized/; the fp32 ones come from ../shared/models.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from tests.conftest import MODELS_DIR
from tests.e2e.quantized import QUANTIZED_MODELS, quantized_model

import deepc
from deepc.bench import interleaved
from deepc.runtime.inputs import random_inputs


def _loaded(path: Path, tmp: Path) -> tuple[object, dict]:
    compiled = deepc.compile(path, "host", opt_level=3)
    model = deepc.load(compiled.save(tmp / f"{path.stem}.tar"))
    model.set_num_threads(1)
    return model, random_inputs(compiled.graph, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(QUANTIZED_MODELS))
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            pair = [_loaded(p, Path(tmp)) for p in (quantized_model(name),
                                                    MODELS_DIR / f"{name}.onnx")]
            cpu: list[list[float]] = []
            interleaved([lambda m=m, x=x: m.run(x) for m, x in pair], args.runs, 5, cpu=cpu)
            q8, fp = (float(np.median(c)) * 1e3 for c in cpu)
            ratios.append(fp / q8)
            print(f"{name:20s} int8 {q8:7.2f} ms  fp32 {fp:7.2f} ms  {fp / q8:5.2f}x"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)
    print(f"geomean {np.exp(np.mean(np.log(ratios))):.2f}x")


if __name__ == "__main__":
    main()

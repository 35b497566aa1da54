"""`make demo`: the main job on the built-in example model, checked against onnxruntime.

Run as `python -m deepc.demo [MODEL]`: import the model and print its IR summary, compile it
for this machine into a bundle, load the bundle, run it on seeded random inputs and compare
every output with onnxruntime.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny_cnn.onnx"
RTOL, ATOL = 1e-3, 1e-4


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    import deepc
    from deepc.cli import summary_table
    from deepc.frontends import load
    from deepc.passes.summary import summarize
    from deepc.runtime.inputs import random_inputs

    console = Console()
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else EXAMPLE
    graph = load(path)
    console.print(summary_table(summarize(graph)))
    with tempfile.TemporaryDirectory() as tmp:
        compiled = deepc.compile(graph, "host")
        bundle = compiled.save(Path(tmp) / f"{path.stem}.tar")
        stats = compiled.stats()
        console.print(f"compiled {path.name} for host: {stats['kernels']} kernels, "
                      f"workspace {stats['arena_bytes']} bytes, "
                      f"{stats['compile_seconds']:.2f} s -> {bundle.name} "
                      f"({bundle.stat().st_size / 1024:.0f} KiB)")
        model = deepc.load(bundle)
        feeds = random_inputs(graph, seed=0)
        start = time.perf_counter()
        ours = model.run(feeds)
        elapsed = time.perf_counter() - start

    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    ok = True
    console.print(f"ran the bundle in {elapsed * 1e3:.2f} ms")
    for name in graph.outputs:
        diff = float(np.max(np.abs(ours[name] - theirs[name])))
        match = bool(np.allclose(ours[name], theirs[name], rtol=RTOL, atol=ATOL))
        ok &= match
        console.print(f"output {name}: max |deepc - onnxruntime| = {diff:.2e} "
                      f"({'[green]match[/]' if match else '[red]MISMATCH[/]'}, "
                      f"rtol {RTOL}, atol {ATOL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

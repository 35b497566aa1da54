"""`make demo`: the main job on the built-in example model, checked against onnxruntime.

Run as `python -m deepc.demo [MODEL]`. Until the compiler lands end to end this imports the
model, prints its IR summary, runs it in the graph interpreter and compares with onnxruntime.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny_cnn.onnx"
RTOL, ATOL = 1e-3, 1e-4


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from deepc.cli import summary_table
    from deepc.frontends import load
    from deepc.ir.summary import summarize
    from deepc.runtime.inputs import random_inputs
    from deepc.runtime.interpreter import run_graph

    console = Console()
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else EXAMPLE
    graph = load(path)
    console.print(summary_table(summarize(graph)))
    feeds = random_inputs(graph, seed=0)
    ours = run_graph(graph, feeds)

    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    ok = True
    for name in graph.outputs:
        diff = float(np.max(np.abs(ours[name] - theirs[name])))
        match = np.allclose(ours[name], theirs[name], rtol=RTOL, atol=ATOL)
        ok &= match
        console.print(f"output {name}: max |deepc - onnxruntime| = {diff:.2e} "
                      f"({'[green]match[/]' if match else '[red]MISMATCH[/]'}, "
                      f"rtol {RTOL}, atol {ATOL})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

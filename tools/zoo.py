"""Public architectures (torchvision, timm, transformers) with random weights -> ONNX files for
`make bench-zoo`: the models deepc has not been tuned on.

    python tools/zoo.py                      # every model into .deepc-cache/zoo/
    python tools/zoo.py --only convnext_tiny --only gpt2_4l --force
    python tools/zoo.py --list

Weights are drawn from each library's own initialisation (seeded); nothing is downloaded.
The exports use opset 17 with a symbolic batch dimension (`deepc bench --batch 32` sets it),
so the ONNX files follow from the pinned versions of the `zoo` extra in pyproject.toml
(torch 2.13 CPU, torchvision 0.28, timm 1.0.31, transformers 5.25). Models whose inputs
are token ids take a fixed sequence length of 128. The table of models is
deepc.runtime.zoo's, which `deepc bench --compare torch` builds its peer from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepc.runtime.zoo import IMAGE, MODELS, SEQ, ZooModel, example_input, library

OPSET = 17


def export(model: ZooModel, path: Path) -> None:
    """The model's ONNX file at `path`, batch symbolic, checked by onnx."""
    import onnx

    torch = library("torch")
    torch.manual_seed(0)
    module = model.build().eval()
    example = example_input(model, (1, SEQ) if model.tokens else (1, *IMAGE))
    dims = {0: "batch"}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            opset_version=OPSET,
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dims, "output": {0: "batch"}},
        )
    onnx.checker.check_model(str(tmp))
    tmp.replace(path)  # a failed export leaves no half-written model behind


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(".deepc-cache/zoo"))
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="export only this model (repeatable)",
    )
    ap.add_argument("--cnn", action="store_true", help="only the convolutional networks")
    ap.add_argument("--force", action="store_true", help="export again over existing files")
    ap.add_argument("--list", action="store_true", help="print the models and exit")
    args = ap.parse_args(argv)
    unknown = set(args.only) - {m.name for m in MODELS}
    if unknown:
        ap.error(f"unknown model(s) {sorted(unknown)}: see --list")
    chosen = [
        m for m in MODELS if (not args.only or m.name in args.only) and (not args.cnn or m.cnn)
    ]
    if args.list:
        for m in chosen:
            print(f"{m.name:24} {m.source:13} {m.family}")
        return 0
    for m in chosen:
        path = args.out / f"{m.name}.onnx"
        if path.exists() and not args.force:
            continue
        print(f"exporting {m.name} ({m.source}) -> {path}", file=sys.stderr)
        export(m, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

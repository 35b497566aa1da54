"""Public architectures (torchvision, timm, transformers) with random weights -> ONNX files for
`make bench-zoo`: the models deepc has not been tuned on.

    python tools/zoo.py                      # every model into .deepc-cache/zoo/
    python tools/zoo.py --only convnext_tiny --only gpt2_4l --force
    python tools/zoo.py --list

Weights are drawn from each library's own initialisation (seeded); nothing is downloaded.
The exports use opset 17 with a symbolic batch dimension (`deepc bench --batch 32` sets it),
so the ONNX files follow from the pinned versions of the `zoo` extra in pyproject.toml
(torch 2.13 CPU, torchvision 0.28, timm 1.0.31, transformers 5.25). Models whose inputs
are token ids take a fixed sequence length of 128.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPSET = 17
SEQ = 128  # tokens per sequence for the language models
IMAGE = (3, 224, 224)


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str  # what the model exercises, for the bench table's reader
    source: str  # the library that defines it
    build: Callable[[], Any]  # the torch module, random weights, eval mode
    tokens: int = 0  # vocabulary size when the input is token ids (else an image)

    @property
    def cnn(self) -> bool:
        return self.tokens == 0 and self.family.startswith("cnn")


def _torchvision() -> Any:
    """torchvision, imported where its kernels library cannot load: PyPI's torchvision wheels
    are linked against CUDA torch, and with the CPU torch of the `zoo` extra its import stops
    at registering shapes for nms/qnms, ops that the library would have defined. The models
    use none of its kernels, so defining the two ops' schemas first lets the import finish."""
    import importlib.util

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None or "torchvision" in sys.modules:
        import torchvision

        return torchvision
    kernels = sorted(Path(spec.origin).parent.glob("_C*.so"))
    try:
        if kernels:
            torch.ops.load_library(str(kernels[0]))
    except OSError:
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)  # the definitions last as long as the Library object
    import torchvision

    return torchvision


_KEEP: list[Any] = []


def _tv(name: str, **kw: Any) -> Callable[[], Any]:
    def build() -> Any:
        import torchvision

        return torchvision.models.get_model(name, weights=None, **kw)

    return build


def _timm(name: str, **kw: Any) -> Callable[[], Any]:
    def build() -> Any:
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return build


def _convmixer() -> Any:
    # ConvMixer-256/8 with 9x9 depthwise kernels, patch 7 (timm's own configs are 20 GFLOP
    # and up; this one keeps the family's shape at a bench-friendly size)
    from timm.models.convmixer import ConvMixer

    return ConvMixer(dim=256, depth=8, kernel_size=9, patch_size=7, num_classes=1000)


def _gpt2() -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        n_layer=4,
        n_embd=512,
        n_head=8,
        n_positions=SEQ,
        vocab_size=8192,
        use_cache=False,
        attn_implementation="eager",
    )
    return _ids_only(GPT2LMHeadModel(cfg))


def _bert() -> Any:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        num_hidden_layers=4,
        hidden_size=512,
        num_attention_heads=8,
        intermediate_size=2048,
        max_position_embeddings=SEQ,
        vocab_size=8192,
        attn_implementation="eager",
    )
    return _ids_only(BertModel(cfg, add_pooling_layer=False))


def _ids_only(inner: Any) -> Any:
    """The transformers model called with token ids alone, returning its first output (the
    exporter then sees one input and one output: no cache, no attention mask)."""
    import torch

    class IdsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            # an all-ones mask: without one, transformers probes position ids for packed
            # sequences with torch.diff, which the exporter cannot translate
            mask = torch.ones_like(ids)
            return self.inner(input_ids=ids, attention_mask=mask, return_dict=True)[0]

    return IdsOnly()


MODELS = [
    ZooModel("resnet50", "cnn: bottleneck residual", "torchvision", _tv("resnet50")),
    ZooModel("resnext50_32x4d", "cnn: grouped convs", "torchvision", _tv("resnext50_32x4d")),
    ZooModel(
        "regnet_y_400mf",
        "cnn: grouped convs + squeeze-excitation",
        "torchvision",
        _tv("regnet_y_400mf"),
    ),
    ZooModel("densenet121", "cnn: dense concat", "torchvision", _tv("densenet121")),
    ZooModel(
        "googlenet",
        "cnn: inception concat",
        "torchvision",
        _tv("googlenet", aux_logits=False, init_weights=True),
    ),
    ZooModel(
        "efficientnet_b1", "cnn: depthwise + SE + swish", "torchvision", _tv("efficientnet_b1")
    ),
    ZooModel("mnasnet1_0", "cnn: depthwise (NAS)", "torchvision", _tv("mnasnet1_0")),
    ZooModel(
        "mobilenet_v3_large",
        "cnn: depthwise + hardswish + SE",
        "torchvision",
        _tv("mobilenet_v3_large"),
    ),
    ZooModel(
        "convnext_tiny",
        "cnn: 7x7 depthwise, channel-last LayerNorm, GELU MLP",
        "torchvision",
        _tv("convnext_tiny"),
    ),
    ZooModel("convmixer_256_8", "cnn: 9x9 depthwise patches", "timm", _convmixer),
    ZooModel(
        "mobilevit_xs", "hybrid: convs + unfold/fold attention", "timm", _timm("mobilevit_xs")
    ),
    ZooModel("swin_t", "transformer: shifted windows", "torchvision", _tv("swin_t")),
    ZooModel("vit_small_patch16_224", "transformer: ViT", "timm", _timm("vit_small_patch16_224")),
    ZooModel("deit_tiny_patch16_224", "transformer: DeiT", "timm", _timm("deit_tiny_patch16_224")),
    ZooModel(
        "gpt2_4l",
        "transformer: causal decoder (4 layers, 512 wide)",
        "transformers",
        _gpt2,
        tokens=8192,
    ),
    ZooModel(
        "bert_4l", "transformer: encoder (4 layers, 512 wide)", "transformers", _bert, tokens=8192
    ),
]


def export(model: ZooModel, path: Path) -> None:
    """The model's ONNX file at `path`, batch symbolic, checked by onnx."""
    import onnx
    import torch

    _torchvision()  # timm and transformers import it too
    torch.manual_seed(0)
    module = model.build().eval()
    if model.tokens:
        example = torch.randint(0, model.tokens, (1, SEQ), dtype=torch.int64)
        dims = {0: "batch"}
    else:
        example = torch.randn(1, *IMAGE)
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

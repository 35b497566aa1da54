"""The model zoo's table: a zoo model's name -> the torch module (random weights) that
tools/zoo.py exports to ONNX and that `deepc bench --compare torch` runs as the peer.

One table serves both so that the peer is the architecture the ONNX file came from: a name
outside it falls back to the torchvision constructor of that name (resnet18.onnx -> resnet18).
torch, torchvision, timm and transformers (the `zoo` extra) are imported only when a model is
built; a missing one is a one-line `ToolchainError` naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepc.errors import InputError, ToolchainError

SEQ = 128  # tokens per sequence for the language models
IMAGE = (3, 224, 224)


@dataclass(frozen=True)
class ZooModel:
    name: str
    family: str  # what the model exercises, for the bench table's reader
    source: str  # the library that defines it
    build: Callable[[], Any]  # the torch module, random weights (not yet in eval mode)
    tokens: int = 0  # vocabulary size when the input is token ids (else an image)

    @property
    def cnn(self) -> bool:
        return self.tokens == 0 and self.family.startswith("cnn")


def library(name: str) -> Any:
    """The imported module `name` (torch, timm, transformers...), or a one-line error saying
    how to install it."""
    if name == "torchvision":
        return _torchvision()
    try:
        return importlib.import_module(name)
    except ImportError as e:
        package = name.partition(".")[0]
        raise ToolchainError(f"the model zoo needs {package} ({e}): pip install 'deepc[zoo]'"
                             ) from e


def _torchvision() -> Any:
    """torchvision, imported where its kernels library cannot load: PyPI's torchvision wheels
    are linked against CUDA torch, and with the CPU torch of the `zoo` extra its import stops
    at registering shapes for nms/qnms, ops that the library would have defined. The models
    use none of its kernels, so defining the two ops' schemas first lets the import finish."""
    torch = library("torch")
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ToolchainError("the model zoo needs torchvision: pip install 'deepc[zoo]'")
    if "torchvision" not in sys.modules:
        kernels = sorted(Path(spec.origin).parent.glob("_C*.so"))
        try:
            if kernels:
                torch.ops.load_library(str(kernels[0]))
        except OSError:
            lib = torch.library.Library("torchvision", "DEF")
            for op in ("nms", "qnms"):
                lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            _KEEP.append(lib)  # the definitions last as long as the Library object
    return importlib.import_module("torchvision")


_KEEP: list[Any] = []


def _tv(name: str, **kw: Any) -> Callable[[], Any]:
    def build() -> Any:
        return library("torchvision").models.get_model(name, weights=None, **kw)

    return build


def _timm(name: str, **kw: Any) -> Callable[[], Any]:
    def build() -> Any:
        _torchvision()  # timm imports it
        return library("timm").create_model(name, pretrained=False, **kw)

    return build


def _convmixer() -> Any:
    # ConvMixer-256/8 with 9x9 depthwise kernels, patch 7 (timm's own configs are 20 GFLOP
    # and up; this one keeps the family's shape at a bench-friendly size)
    _torchvision()  # timm imports it
    convmixer = library("timm.models.convmixer")
    return convmixer.ConvMixer(dim=256, depth=8, kernel_size=9, patch_size=7, num_classes=1000)


def _gpt2() -> Any:
    tf = library("transformers")
    cfg = tf.GPT2Config(
        n_layer=4,
        n_embd=512,
        n_head=8,
        n_positions=SEQ,
        vocab_size=8192,
        use_cache=False,
        attn_implementation="eager",
    )
    return _ids_only(tf.GPT2LMHeadModel(cfg))


def _bert() -> Any:
    tf = library("transformers")
    cfg = tf.BertConfig(
        num_hidden_layers=4,
        hidden_size=512,
        num_attention_heads=8,
        intermediate_size=2048,
        max_position_embeddings=SEQ,
        vocab_size=8192,
        attn_implementation="eager",
    )
    return _ids_only(tf.BertModel(cfg, add_pooling_layer=False))


def _ids_only(inner: Any) -> Any:
    """The transformers model called with token ids alone, returning its first output (the
    exporter then sees one input and one output: no cache, no attention mask)."""
    torch = library("torch")

    class IdsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids: Any) -> Any:
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

BY_NAME = {m.name: m for m in MODELS}


def zoo_model(name: str) -> ZooModel:
    """The zoo's entry for `name`, or an entry building the torchvision model of that name
    (the shared models are named after their torchvision constructors)."""
    if name in BY_NAME:
        return BY_NAME[name]
    if not hasattr(library("torchvision").models, name):
        known = ", ".join(sorted(BY_NAME))
        raise InputError(f"no zoo or torchvision model {name!r}: name the ONNX file after a"
                         f" torchvision constructor (resnet18.onnx) or a zoo model ({known})")
    return ZooModel(name, "torchvision", "torchvision", _tv(name))


def example_input(model: ZooModel, shape: tuple[int, ...], device: str = "cpu") -> Any:
    """A random input of `shape` for the model: token ids below its vocabulary, else an
    image batch."""
    torch = library("torch")
    if model.tokens:
        return torch.randint(0, model.tokens, shape, dtype=torch.int64, device=device)
    return torch.randn(*shape, device=device)

"""Op names (deepc's, onnxruntime's) into a few kinds of work, each with a colour: how the
report groups time across two runtimes that name and fuse ops differently."""

from __future__ import annotations

# (kind, colour, words: an op whose lowered name without "_" contains one is of that kind);
# the first match wins, so "conv" before the elementwise words ("fusedconv" is a conv)
KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("conv", "#4e79a7", ("conv",)),
    ("matmul", "#f28e2b", ("gemm", "matmul", "fullyconnected", "attention")),
    ("pool", "#59a14f", ("pool",)),
    ("layout", "#b07aa1", ("layout", "reorder", "transpose", "block", "nchwc")),
    ("normalization", "#edc948", ("norm", "softmax")),
    ("movement", "#9c755f", ("concat", "reshape", "slice", "gather", "split", "flatten",
                             "squeeze", "pad", "expand", "identity", "resize", "shuffle")),
    ("recurrent", "#ff9da7", ("lstm", "gru", "rnn", "scan", "loop")),
    ("reduce", "#76b7b2", ("reduce", "mean", "sum", "argmax", "argmin")),
    ("elementwise", "#e15759", ("relu", "add", "mul", "sub", "div", "sigmoid", "clip", "tanh",
                                "erf", "gelu", "swish", "silu", "exp", "sqrt", "pow", "cast",
                                "where", "max", "min", "neg", "abs")),
)
OTHER = ("other", "#bab0ac")
COLOURS = {kind: colour for kind, colour, _ in (*KINDS, (*OTHER, ()))}


def kind_of(op: str) -> str:
    name = op.lower().replace("_", "")
    return next((kind for kind, _, words in KINDS if any(w in name for w in words)), OTHER[0])


def kernel_kind(ops: list[str] | tuple[str, ...]) -> str:
    """A fused kernel is of the kind of its first op that does more than move data (a
    layout transform fused before a convolution makes a convolution kernel)."""
    kinds = [kind_of(op) for op in ops]
    return next((k for k in kinds if k not in ("layout", "movement")), kinds[0] if kinds
                else OTHER[0])

"""ONNX LSTM, GRU and RNN (opsets 7 and up) to lstm/gru/rnn with every default resolved."""

from __future__ import annotations

from collections.abc import Iterator

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter
from deepc.ops.rnn import CELLS, CellKind

OPS = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}

# ONNX activation names (matched case-insensitively, as onnxruntime does) to deepc names.
ACTIVATION_NAMES = {
    "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "affine": "affine",
    "leakyrelu": "leaky_relu", "thresholdedrelu": "thresholded_relu",
    "scaledtanh": "scaled_tanh", "hardsigmoid": "hard_sigmoid", "elu": "elu",
    "softsign": "softsign", "softplus": "softplus",
}

# (alpha, beta) defaults of the ONNX operators of the same name; None: the function takes no
# such value and so consumes none from activation_alpha / activation_beta.
PARAM_DEFAULTS: dict[str, tuple[float | None, float | None]] = {
    "affine": (1.0, 0.0),
    "leaky_relu": (0.01, None),
    "thresholded_relu": (1.0, None),
    "scaled_tanh": (1.0, 1.0),
    "hard_sigmoid": (0.2, 0.5),
    "elu": (1.0, None),
}


def _take(values: Iterator[float], default: float | None) -> float:
    """The next listed value for a function that takes one, else 0.0 (unused)."""
    return 0.0 if default is None else float(next(values, default))


def resolve_activations(n: OnnxNode, cell: CellKind,
                        dirs: int) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Activation names with one explicit alpha and beta each, for every direction.

    ONNX lists alphas and betas only for the functions that take them, consumed in order
    of the activations; the IR stores them positionally instead.
    """
    given = n.attr("activations") or cell.activations * dirs
    names = []
    for a in given:
        key = str(a).lower()
        if key not in ACTIVATION_NAMES:
            raise ConversionError(
                f"node {n.name!r} ({n.op_type}): unknown activation {a!r}; ONNX allows "
                f"{', '.join(sorted(ACTIVATION_NAMES))}")
        names.append(ACTIVATION_NAMES[key])
    alphas, betas = iter(n.attr("activation_alpha") or ()), iter(n.attr("activation_beta") or ())
    params = [(_take(alphas, PARAM_DEFAULTS.get(a, (None, None))[0]),
               _take(betas, PARAM_DEFAULTS.get(a, (None, None))[1])) for a in names]
    triples = list(zip(names, params))
    per_dir = len(cell.activations)
    if len(triples) < per_dir * dirs:
        raise ConversionError(
            f"node {n.name!r} ({n.op_type}): {len(triples)} activations given, "
            f"{per_dir * dirs} needed ({per_dir} per direction)")
    # The RNN schema's default lists two activations even for one direction, so exporters may
    # too: extra ones are unused (onnxruntime takes the first ones likewise).
    triples = triples[:per_dir * dirs]
    return (tuple(t[0] for t in triples), tuple(t[1][0] for t in triples),
            tuple(t[1][1] for t in triples))


@converter("LSTM", "GRU", "RNN")
def recurrent(b: GraphBuilder, n: OnnxNode) -> None:
    op = OPS[n.op_type]
    cell = CELLS[op]
    direction = str(n.attr("direction", "forward"))
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ConversionError(f"node {n.name!r} ({n.op_type}): direction must be forward, "
                              f"reverse or bidirectional, not {direction!r}")
    dirs = 2 if direction == "bidirectional" else 1
    hidden = n.attr("hidden_size")
    if hidden is None:  # optional in the schema: R is [num_directions, gates*hidden, hidden]
        hidden = b.type(n.inputs[2]).shape[-1]
    names, alphas, betas = resolve_activations(n, cell, dirs)
    clip = n.attr("clip")
    attrs = {
        "direction": direction,
        "hidden_size": int(hidden),
        "activations": names,
        "activation_alpha": alphas,
        "activation_beta": betas,
        "clip": None if clip is None else float(clip),
        "layout": int(n.attr("layout", 0)) if n.opset >= 14 else 0,
    }
    if op == "lstm":
        attrs["input_forget"] = int(n.attr("input_forget", 0))
    if op == "gru":
        attrs["linear_before_reset"] = int(n.attr("linear_before_reset", 0))
    n_inputs, n_outputs = (8, 3) if cell.states == 2 else (6, 2)
    inputs = [n.input(i) for i in range(n_inputs)]
    outputs = [n.outputs[i] if i < len(n.outputs) else "" for i in range(n_outputs)]
    b.emit(op, inputs, attrs, outputs=outputs, name=n.name)

"""Recurrent ops (lstm, gru, rnn): whole-sequence recurrences with ONNX semantics, never fused.

Inputs follow ONNX order with omitted optionals as None: X, W, R, B, sequence_lens,
initial_h, then for lstm initial_c and P. Attributes are normalized by the frontend:
`direction` ("forward" | "reverse" | "bidirectional"), `hidden_size`, `activations` (one name
per activation per direction, snake_case), `activation_alpha` / `activation_beta` (one value per
activation, 0.0 where unused), `clip` (float or None), `layout` (0: sequence major, 1: batch
major), `input_forget` (lstm) and `linear_before_reset` (gru).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.ir.graph import Attrs
from deepc.ir.types import FLOAT_DTYPES, TensorType
from deepc.ops.elementwise import ACTIVATIONS
from deepc.ops.registry import FusionKind, Op

Activation = Callable[[np.ndarray, float, float], np.ndarray]


def _shared(name: str) -> Activation:
    """An activation that is also an elementwise op: reuse that op's reference."""
    fn = ACTIVATIONS[name]
    return lambda x, alpha, beta: fn(x, {"alpha": alpha, "beta": beta})


# The activation functions ONNX allows inside recurrent cells, as fn(x, alpha, beta).
RNN_ACTIVATIONS: dict[str, Activation] = {
    **{name: _shared(name) for name in (
        "relu", "tanh", "sigmoid", "leaky_relu", "thresholded_relu", "hard_sigmoid", "elu",
        "softsign", "softplus")},
    "affine": lambda x, alpha, beta: alpha * x + beta,
    "scaled_tanh": lambda x, alpha, beta: alpha * np.tanh(beta * x),
}


@dataclass(frozen=True)
class CellKind:
    """What distinguishes the three recurrences: gate count, activations, state count."""

    gates: int  # blocks of hidden_size rows in W and R
    activations: tuple[str, ...]  # ONNX default activations of one direction
    states: int  # 2 for lstm (h and c), 1 otherwise


CELLS = {
    "lstm": CellKind(4, ("sigmoid", "tanh", "tanh"), 2),
    "gru": CellKind(3, ("sigmoid", "tanh"), 1),
    "rnn": CellKind(1, ("tanh",), 1),
}


def num_directions(attrs: Attrs) -> int:
    direction = attrs["direction"]
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"direction must be forward, reverse or bidirectional, not {direction!r}")
    return 2 if direction == "bidirectional" else 1


# -- type rule -----------------------------------------------------------------------------------
def _expect(ty: TensorType | None, shape: tuple[int, ...], what: str) -> None:
    if ty is not None and ty.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {ty.shape}")


def _infer(cell: CellKind, ins: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    ins = list(ins) + [None] * (6 + 2 * (cell.states - 1) - len(ins))
    x, w, r, b, lens = ins[:5]
    if x is None or w is None or r is None:
        raise ValueError("X, W and R are required")
    if x.dtype not in FLOAT_DTYPES or w.dtype != x.dtype or r.dtype != x.dtype:
        raise ValueError(f"X, W, R must share one float dtype, got {x.dtype}, {w.dtype}, {r.dtype}")
    if x.rank != 3:
        raise ValueError(f"X must have rank 3, got {x.shape}")
    dirs, hidden, layout = num_directions(attrs), int(attrs["hidden_size"]), attrs["layout"]
    seq, batch, size = (x.shape[1], x.shape[0], x.shape[2]) if layout else x.shape
    rows = cell.gates * hidden
    _expect(w, (dirs, rows, size), "W")
    _expect(r, (dirs, rows, hidden), "R")
    _expect(b, (dirs, 2 * rows), "B")
    _expect(lens, (batch,), "sequence_lens")
    if lens is not None and lens.dtype != "int32":
        raise ValueError(f"sequence_lens must be int32, got {lens.dtype}")
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    for i, ty in enumerate(ins[5:5 + cell.states]):
        _expect(ty, state, "initial_c" if i else "initial_h")
    if cell.states == 2:
        _expect(ins[7], (dirs, 3 * hidden), "P")
    acts = attrs["activations"]
    if len(acts) != dirs * len(cell.activations):
        raise ValueError(f"expected {dirs * len(cell.activations)} activations, got {len(acts)}")
    unknown = [a for a in acts if a not in RNN_ACTIVATIONS]
    if unknown:
        raise ValueError(f"unknown activation(s) {unknown}; known: {sorted(RNN_ACTIVATIONS)}")
    y = (batch, seq, dirs, hidden) if layout else (seq, dirs, batch, hidden)
    return [TensorType(s, x.dtype) for s in (y, state, state)[:1 + cell.states]]


# -- cells: one time step of every batch row, given x_t @ W^T + Wb precomputed ------------------
@dataclass(frozen=True)
class Step:
    """The weights of one direction and its activations, bound to what a cell step needs."""

    r: np.ndarray  # [gates * hidden, hidden]
    rb: np.ndarray  # [gates * hidden]
    p: np.ndarray | None  # peepholes [3 * hidden] (lstm only)
    acts: tuple[Callable[[np.ndarray], np.ndarray], ...]
    clip: Callable[[np.ndarray], np.ndarray]
    attrs: Attrs


def _lstm_step(s: Step, xw: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
    f, g, hact = s.acts
    i_, o_, f_, c_ = np.split(xw + h @ s.r.T + s.rb, 4, axis=-1)
    if s.p is not None:  # peepholes read the previous cell state for i and f, the new one for o
        pi, po, pf = np.split(s.p, 3)
        i_, f_ = i_ + pi * c, f_ + pf * c
    i = f(s.clip(i_))
    forget = 1 - i if s.attrs["input_forget"] else f(s.clip(f_))
    c_new = forget * c + i * g(s.clip(c_))
    if s.p is not None:
        o_ = o_ + po * c_new
    return f(s.clip(o_)) * hact(c_new), c_new


def _gru_step(s: Step, xw: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    f, g = s.acts
    rz, rr, rh = np.split(s.r, 3)
    rbz, rbr, rbh = np.split(s.rb, 3)
    xz, xr, xh = np.split(xw, 3, axis=-1)
    z = f(s.clip(xz + h @ rz.T + rbz))
    r = f(s.clip(xr + h @ rr.T + rbr))
    if s.attrs["linear_before_reset"]:
        pre = xh + r * (h @ rh.T + rbh)
    else:
        pre = xh + (r * h) @ rh.T + rbh
    return ((1 - z) * g(s.clip(pre)) + z * h,)


def _rnn_step(s: Step, xw: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    return (s.acts[0](s.clip(xw + h @ s.r.T + s.rb)),)


STEPS: dict[str, Callable[..., tuple[np.ndarray, ...]]] = {
    "lstm": _lstm_step, "gru": _gru_step, "rnn": _rnn_step,
}


# -- reference -----------------------------------------------------------------------------------
def _activations(attrs: Attrs, d: int, per_dir: int,
                 dtype: np.dtype) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
    names = attrs["activations"][d * per_dir:(d + 1) * per_dir]
    alphas = attrs["activation_alpha"][d * per_dir:(d + 1) * per_dir]
    betas = attrs["activation_beta"][d * per_dir:(d + 1) * per_dir]

    def bind(name: str, alpha: float, beta: float) -> Callable[[np.ndarray], np.ndarray]:
        fn = RNN_ACTIVATIONS[name]

        def act(x: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore"):
                return np.asarray(fn(x, alpha, beta)).astype(dtype, copy=False)

        return act

    return tuple(bind(*t) for t in zip(names, alphas, betas))


def _clipper(attrs: Attrs) -> Callable[[np.ndarray], np.ndarray]:
    bound = attrs["clip"]
    if bound is None:
        return lambda v: v
    return lambda v: np.clip(v, -bound, bound)


def _reference(kind: str, ins: Sequence[Any], attrs: Attrs) -> tuple[np.ndarray, ...]:
    cell = CELLS[kind]
    ins = list(ins) + [None] * (8 - len(ins))
    x, w, r, b, lens, h0, c0, p = ins
    if attrs["layout"]:  # compute sequence major; transpose the results back at the end
        x = x.transpose(1, 0, 2)
        h0, c0 = (None if v is None else v.transpose(1, 0, 2) for v in (h0, c0))
    seq, batch, _ = x.shape
    dirs, hidden, dtype = num_directions(attrs), int(attrs["hidden_size"]), x.dtype
    lens = np.full(batch, seq) if lens is None else np.asarray(lens, np.int64)
    if np.any(lens < 0) or np.any(lens > seq):
        raise ValueError(f"sequence_lens {lens.tolist()} out of range [0, {seq}]")
    rows = cell.gates * hidden
    if b is None:
        b = np.zeros((dirs, 2 * rows), dtype)
    y = np.zeros((seq, dirs, batch, hidden), dtype)
    finals = [np.zeros((dirs, batch, hidden), dtype) for _ in range(cell.states)]
    for d in range(dirs):
        step = Step(r[d], b[d, rows:], None if kind != "lstm" or p is None else p[d],
                    _activations(attrs, d, len(cell.activations), dtype), _clipper(attrs), attrs)
        xw = x @ w[d].T + b[d, :rows]
        states = [np.zeros((batch, hidden), dtype) if v is None else v[d] for v in (h0, c0)]
        states = states[:cell.states]
        reverse = attrs["direction"] == "reverse" or d == 1
        # Rows whose sequence ended keep their state: in reverse, a row of length L first sees
        # the padded steps L.. as no-ops, then runs L-1 down to 0, as ONNX defines it.
        for t in range(seq - 1, -1, -1) if reverse else range(seq):
            live = (t < lens)[:, None]
            new = STEPS[kind](step, xw[t], *states)
            states = [np.where(live, n, s).astype(dtype, copy=False) for n, s in zip(new, states)]
            y[t, d] = np.where(live, new[0], 0)
        # An empty sequence has no last step: its final states are zero (onnxruntime's choice;
        # the ONNX spec leaves it open), not the initial ones.
        for final, state in zip(finals, states):
            final[d] = np.where((lens > 0)[:, None], state, 0)
    if attrs["layout"]:
        return (y.transpose(2, 0, 1, 3), *(f.transpose(1, 0, 2) for f in finals))
    return (y, *finals)


def _flops(cell: CellKind, ins: Sequence[TensorType | None], outs: Sequence[TensorType],
           attrs: Attrs) -> int:
    x = ins[0]
    assert x is not None
    steps = x.shape[0] * x.shape[1]  # seq * batch in either layout
    hidden = int(attrs["hidden_size"])
    return 2 * steps * num_directions(attrs) * cell.gates * hidden * (x.shape[2] + hidden)


# -- compute: one extern whose loops are written in rnn_loops --------------------------------
def _produced(full: Sequence[TensorType],
              outs: Sequence[TensorType | None]) -> tuple[int, ...]:
    """Which of Y, Y_h(, Y_c) the node keeps. `outs` lists the types of all outputs with
    None for omitted ones, or (as compilers pass them today) only the kept outputs' types.

    From the kept types alone, an lstm keeping one state could keep Y_h or Y_c: it is taken
    to be Y_h, which models keep far more often (Y_c alone is wrong until the compiler passes
    None for omitted outputs).
    """
    if len(outs) == len(full):
        return tuple(k for k, o in enumerate(outs) if o is not None)
    with_y = bool(outs) and outs[0] == full[0]
    return (0,) * with_y + tuple(range(1, 1 + len(outs) - with_y))


def _compute(kind: str, ins: Sequence[Any], attrs: Attrs,
             outs: Sequence[TensorType | None]) -> list[Any]:
    from deepc.ir.tensor import extern
    from deepc.ops.rnn_loops import INPUTS, OUTPUTS, Recurrence

    cell = CELLS[kind]
    ins = list(ins) + [None] * (len(INPUTS) - len(ins))
    full = _infer(cell, [None if t is None else TensorType(t.shape, t.dtype) for t in ins],
                  attrs)
    kept = _produced(full, outs)
    x = ins[0]
    seq, batch = (x.shape[1], x.shape[0]) if attrs["layout"] else x.shape[:2]
    rec = Recurrence(kind, attrs, cell.gates, seq, batch, x.shape[2], x.dtype,
                     tuple(n for n, t in zip(INPUTS, ins) if t is not None),
                     tuple(OUTPUTS[k] for k in kept), tuple(full[k].shape for k in kept))
    return extern(kind, [t for t in ins if t is not None],
                  [(full[k].shape, full[k].dtype) for k in kept], rec.build)


def _register(kind: str, doc: str) -> Op:
    cell = CELLS[kind]
    op = Op(kind, FusionKind.OPAQUE, doc=doc)
    op.infer(lambda ins, attrs: _infer(cell, ins, attrs))
    op.reference(lambda ins, attrs: _reference(kind, ins, attrs))
    op.flops(lambda ins, outs, attrs: _flops(cell, ins, outs, attrs))
    op.def_compute(lambda ins, attrs, outs: _compute(kind, ins, attrs, outs))
    return op


lstm = _register("lstm", "ONNX LSTM: outputs Y, Y_h, Y_c")
gru = _register("gru", "ONNX GRU: outputs Y, Y_h")
rnn = _register("rnn", "ONNX RNN (Elman): outputs Y, Y_h")

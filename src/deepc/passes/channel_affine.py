"""Per-channel scale and shift folding, rules of the `simplify` pass.

A batch norm, or a mul/add/sub by a constant that varies only along the channel axis, is a
per-channel affine map y * s + t. Right after a conv, gemm or 2-D matmul with constant
weights whose output it alone reads, it folds into that node: the weights are scaled per
output channel and the bias becomes b * s + t (a matmul with a shift becomes a gemm). A
batch norm that cannot fold becomes a mul and an add by folded constants. The channel axis
is 1 for all three producers: [N, M, *spatial] for conv, [M, N] for gemm and matmul.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepc.ir.graph import Node
from deepc.ops.common import broadcast_shape
from deepc.passes.rewriter import Rewriter

FLOATS = frozenset({"float16", "float32", "float64"})


@dataclass(frozen=True)
class Affine:
    """y * scale + shift along axis 1; float64 vectors of the channel count, or None."""

    scale: np.ndarray | None
    shift: np.ndarray | None


def channel_vector(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """`c` as one float64 value per index of axis 1 of `shape`, when c broadcasts to `shape`
    (without growing it) and is constant along every other axis; else None."""
    if len(shape) < 2 or c.ndim > len(shape):
        return None
    try:
        if broadcast_shape(c.shape, shape) != shape:
            return None
    except ValueError:
        return None
    aligned = c.reshape((1,) * (len(shape) - c.ndim) + c.shape)
    if any(n != 1 for d, n in enumerate(aligned.shape) if d != 1):
        return None
    return np.broadcast_to(aligned.reshape(-1).astype(np.float64), (shape[1],)).copy()


def scaled(w: np.ndarray, scale: np.ndarray | None, axis: int) -> np.ndarray:
    if scale is None:
        return w
    shape = [1] * w.ndim
    shape[axis] = scale.size
    return (w.astype(np.float64) * scale.reshape(shape)).astype(w.dtype)


def new_bias(bias: np.ndarray | None, aff: Affine, dtype: np.dtype) -> np.ndarray | None:
    """bias * scale + shift (bias broadcasting against the channel vectors)."""
    value = None if bias is None else bias.astype(np.float64)
    if value is not None and aff.scale is not None:
        value = value * aff.scale
    if aff.shift is not None:
        value = aff.shift if value is None else value + aff.shift
    return None if value is None else value.astype(dtype)


@dataclass(frozen=True)
class Folded:
    """The producer rewritten: its op (a matmul with a shift becomes a gemm), inputs, attrs."""

    op: str
    inputs: list[str]
    attrs: dict[str, Any]


def keep_or_add(rw: Rewriter, value: np.ndarray, name: str) -> str:
    """`name` when `value` is its array unchanged, else a new constant named after it."""
    return name if rw.const(name) is value else rw.add_constant(value, name)


def fold_conv(rw: Rewriter, p: Node, aff: Affine) -> Folded | None:
    w = rw.const(p.inputs[1])
    b_name = p.inputs[2] if len(p.inputs) > 2 else ""
    b = rw.const(b_name)
    if w is None or (b_name and b is None):
        return None
    axis = w.ndim - 1 if p.attr("kernel_layout", "OIHW") == "IHWO" else 0
    inputs = [p.inputs[0], keep_or_add(rw, scaled(w, aff.scale, axis), p.inputs[1])]
    bias = new_bias(b, aff, w.dtype)
    if bias is not None:
        inputs.append(rw.add_constant(bias, b_name or f"{p.outputs[0]}:bias"))
    return Folded("conv", inputs, dict(p.attrs))


def fold_gemm(rw: Rewriter, p: Node, aff: Affine) -> Folded | None:
    """alpha * A @ B' + beta * C: B' scaled by column, C -> beta * C * scale + shift."""
    b_name, c_name = p.inputs[1], p.inputs[2] if len(p.inputs) > 2 else ""
    b, c = rw.const(b_name), rw.const(c_name)
    if (b is None and aff.scale is not None) or (c_name and c is None):
        return None
    if b is not None:
        b_name = keep_or_add(rw, scaled(b, aff.scale, 0 if p.attr("trans_b", 0) else 1), b_name)
    inputs = [p.inputs[0], b_name]
    beta = float(p.attr("beta", 1.0))
    bias = new_bias(None if c is None else c * beta, aff, rw.type(p.outputs[0]).dtype)
    if bias is not None:
        inputs.append(rw.add_constant(bias, c_name or f"{p.outputs[0]}:bias"))
    return Folded("gemm", inputs, {**p.attrs, "beta": 1.0})


def fold_matmul(rw: Rewriter, p: Node, aff: Affine) -> Folded | None:
    """A 2-D matmul: constant weights scaled by column; a shift makes it a gemm."""
    a, w_name = p.inputs
    w = rw.const(w_name)
    if (w is None and aff.scale is not None) or rw.type(w_name).rank != 2 \
            or rw.type(a).rank != 2:
        return None
    if w is not None:
        w_name = keep_or_add(rw, scaled(w, aff.scale, 1), w_name)
    inputs = [a, w_name]
    bias = new_bias(None, aff, rw.type(p.outputs[0]).dtype)
    if bias is None:
        return Folded("matmul", inputs, {})
    inputs.append(rw.add_constant(bias, f"{p.outputs[0]}:bias"))
    return Folded("gemm", inputs, {"alpha": 1.0, "beta": 1.0, "trans_a": 0, "trans_b": 0})


FOLDERS: dict[str, Callable[[Rewriter, Node, Affine], Folded | None]] = {
    "conv": fold_conv, "gemm": fold_gemm, "matmul": fold_matmul}


def fold_into_producer(rw: Rewriter, node: Node, y: str, aff: Affine) -> bool:
    """Replace `node` (y * scale + shift) and y's producer by one rewritten producer."""
    p = rw.producer_of(y)
    if p is None or p.op not in FOLDERS or not rw.only_use(y) \
            or rw.type(y).dtype not in FLOATS:
        return False
    folded = FOLDERS[p.op](rw, p, aff)
    if folded is None:
        return False
    rw.drop(node)
    rw.drop(p)
    rw.emit(folded.op, folded.inputs, folded.attrs, outputs=node.outputs, name=p.name)
    return True


# -- rules --------------------------------------------------------------------------------------
def batch_norm(rw: Rewriter, node: Node) -> bool:
    """Fold into the producer, else y = x * s + t with s = scale / sqrt(var + eps) and
    t = bias - mean * s, per channel ([C] parameters) or per activation (x.shape[1:])."""
    x = node.inputs[0]
    params = [rw.const(p) for p in node.inputs[1:5]]
    dtype = rw.type(x).dtype
    if any(p is None for p in params) or dtype not in FLOATS:
        return False
    scale, bias, mean, var = (p.astype(np.float64) for p in params)  # type: ignore[union-attr]
    s = scale / np.sqrt(var + float(node.attrs["epsilon"]))
    t = bias - mean * s
    if s.ndim == 1 and fold_into_producer(rw, node, x, Affine(s, t)):
        return True
    shape = (s.size, *(1,) * (rw.type(x).rank - 2)) if s.ndim == 1 else s.shape
    s_name = rw.add_constant(s.reshape(shape).astype(dtype), f"{node.outputs[0]}:scale")
    t_name = rw.add_constant(t.reshape(shape).astype(dtype), f"{node.outputs[0]}:shift")
    rw.drop(node)
    scaled_x = rw.emit("mul", [x, s_name], name=node.name)[0]
    rw.emit("add", [scaled_x, t_name], outputs=node.outputs, name=node.name)
    return True


def channel_affine(kind: str) -> Callable[[Rewriter, Node], bool]:
    """y * c, y + c, c + y, y - c with c a per-channel constant (one value per index of
    axis 1), folded into y's producer; the result must keep y's type."""
    def rule(rw: Rewriter, node: Node) -> bool:
        a, b = node.inputs
        for y, c in ((a, b),) if kind == "sub" else ((a, b), (b, a)):
            value = rw.const(c)
            if value is None or rw.type(node.outputs[0]) != rw.type(y):
                continue
            vec = channel_vector(value, rw.type(y).shape)
            if vec is None:
                continue
            aff = Affine(vec, None) if kind == "mul" else Affine(None, -vec if kind == "sub"
                                                                   else vec)
            return fold_into_producer(rw, node, y, aff)
        return False

    return rule


AFFINE_RULES: dict[str, list[Callable[[Rewriter, Node], bool]]] = {
    "batch_norm": [batch_norm],
    "mul": [channel_affine("mul")],
    "add": [channel_affine("add")],
    "sub": [channel_affine("sub")],
}

"""Ops that move a whole tensor into a new shape: reshape, transpose, broadcast_to, tile."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.common import broadcast_index, broadcast_shape
from deepc.ops.movement import data_input, empty_output, int_tuple
from deepc.ops.registry import FusionKind, Op


def _strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def _axis_groups(out_shape: Sequence[int], in_shape: Sequence[int]
                 ) -> list[tuple[range, range]]:
    """The shortest runs of output and input axes whose sizes multiply to the same product,
    in order (a kept axis is a run of one each side); one run of all axes for empty shapes."""
    na, nb = len(out_shape), len(in_shape)
    if 0 in out_shape or 0 in in_shape:
        return [(range(na), range(nb))]
    groups, a, b = [], 0, 0
    while a < na or b < nb:
        a1, b1 = min(a + 1, na), min(b + 1, nb)
        pa, pb = prod(out_shape[a:a1]), prod(in_shape[b:b1])
        while pa != pb:
            if pa < pb:
                pa, a1 = pa * out_shape[a1], a1 + 1
            else:
                pb, b1 = pb * in_shape[b1], b1 + 1
        groups.append((range(a, a1), range(b, b1)))
        a, b = a1, b1
    return groups


def reshape_index(i: Sequence[E.Expr], out_shape: Sequence[int],
                  in_shape: Sequence[int]) -> list[E.Expr]:
    """Input indices of a row-major reshape, run by run of axes of equal size (_axis_groups):
    an axis the reshape keeps maps straight through, and axes split or merged go through a
    flat offset of their run alone, so a reshape [C, H*W] -> [1, C, H, W] keeps its indices
    affine (one offset over all axes would divide and take a modulo per element)."""
    src: list[E.Expr] = []
    for outs, ins in _axis_groups(out_shape, in_shape):
        terms = [E.as_expr(i[k]) if stride == 1 else E.as_expr(i[k]) * stride
                 for k, stride in zip(outs, _strides([out_shape[k] for k in outs]))
                 if out_shape[k] > 1]
        flat: E.Expr = E.Const(0, E.INDEX)
        for n, t in enumerate(terms):
            flat = t if n == 0 else flat + t
        for n, (k, stride) in enumerate(zip(ins, _strides([in_shape[k] for k in ins]))):
            d = in_shape[k]
            j = E.Const(0, E.INDEX) if d == 1 else flat if stride == 1 else flat // stride
            src.append(j % d if n and d > 1 else j)  # flat // stride < d on a run's first
    return src


# -- reshape ------------------------------------------------------------------------------------
reshape = Op("reshape", FusionKind.INJECTIVE,
             doc="row-major reshape to attrs['shape'], a full static shape (no 0 or -1)")


@reshape.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, shape = data_input(ins), int_tuple(attrs, "shape")
    if any(d < 0 for d in shape):
        raise ValueError(f"reshape target {shape} has a negative dimension")
    if prod(shape) != x.size:
        raise ValueError(f"cannot reshape {x.size} elements to {shape}")
    return TensorType(shape, x.dtype)


@reshape.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.reshape(ins[0], int_tuple(attrs, "shape"))


@reshape.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, out = ins[0], outs[0]
    return empty_output(out, "reshape") or compute(
        out.shape, lambda *i: x[tuple(reshape_index(i, out.shape, x.shape))], "reshape")


# -- transpose ----------------------------------------------------------------------------------
transpose = Op("transpose", FusionKind.INJECTIVE,
               doc="out.shape[i] = x.shape[perm[i]]; perm is a full permutation")


@transpose.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, perm = data_input(ins), int_tuple(attrs, "perm")
    if sorted(perm) != list(range(x.rank)):
        raise ValueError(f"perm {perm} is not a permutation of the {x.rank} axes")
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


@transpose.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(ins[0], int_tuple(attrs, "perm")))


@transpose.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, perm = ins[0], int_tuple(attrs, "perm")

    def fn(*i: E.Var) -> E.Expr:
        src: list[E.Expr] = [E.Const(0, E.INDEX)] * x.rank
        for k, p in enumerate(perm):
            src[p] = i[k]
        return x[tuple(src)]

    return compute(outs[0].shape, fn, "transpose")


# -- broadcast_to -------------------------------------------------------------------------------
broadcast_to = Op("broadcast_to", FusionKind.BROADCAST,
                  doc="numpy-broadcast x to attrs['shape'], the full output shape")


@broadcast_to.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, shape = data_input(ins), int_tuple(attrs, "shape")
    if broadcast_shape(x.shape, shape) != shape:
        raise ValueError(f"{x.shape} does not broadcast to {shape}")
    return TensorType(shape, x.dtype)


@broadcast_to.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return 0  # pure data movement


@broadcast_to.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.array(np.broadcast_to(ins[0], int_tuple(attrs, "shape")))


@broadcast_to.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    return compute(outs[0].shape, lambda *i: x[broadcast_index(i, x.shape)], "broadcast_to")


# -- tile ---------------------------------------------------------------------------------------
tile = Op("tile", FusionKind.INJECTIVE, doc="repeat x attrs['repeats'][i] times along axis i")


@tile.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, reps = data_input(ins), int_tuple(attrs, "repeats")
    if len(reps) != x.rank or any(r < 0 for r in reps):
        raise ValueError(f"repeats {reps} must be {x.rank} non-negative counts")
    return TensorType(tuple(d * r for d, r in zip(x.shape, reps)), x.dtype)


@tile.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.tile(ins[0], int_tuple(attrs, "repeats"))


@tile.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, reps = ins[0], int_tuple(attrs, "repeats")
    return empty_output(outs[0], "tile") or compute(outs[0].shape, lambda *i: x[tuple(
        0 if d == 1 else o if r == 1 else o % d for o, d, r in zip(i, x.shape, reps))], "tile")

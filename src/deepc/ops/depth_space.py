"""depth_to_space and space_to_depth: NCHW channels to spatial blocks and back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.movement import data_input
from deepc.ops.registry import FusionKind, Op

# -- depth_to_space / space_to_depth ------------------------------------------------------------
depth_to_space = Op("depth_to_space", FusionKind.INJECTIVE, doc="""NCHW channels to blocks:
[N, C*b*b, H, W] -> [N, C, H*b, W*b]; `mode` DCR reads channel (i*b + j)*C + c for block
offset (i, j), CRD reads c*b*b + i*b + j.""")
space_to_depth = Op("space_to_depth", FusionKind.INJECTIVE, doc="""NCHW blocks to channels:
[N, C, H*b, W*b] -> [N, C*b*b, H, W], the inverse of depth_to_space with the same `mode`.""")


def _check_mode(attrs: Attrs) -> None:
    if attrs["mode"] not in ("DCR", "CRD"):
        raise ValueError(f"mode {attrs['mode']!r} is neither DCR nor CRD")


@depth_to_space.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, b = data_input(ins), int(attrs["blocksize"])  # type: ignore[arg-type]
    if x.rank != 4 or b < 1 or x.shape[1] % (b * b):
        raise ValueError(f"needs a 4-d input whose channels divide by blocksize² ({b}²)")
    _check_mode(attrs)
    n, c, h, w = x.shape
    return TensorType((n, c // (b * b), h * b, w * b), x.dtype)


@depth_to_space.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, b = ins[0], int(attrs["blocksize"])  # type: ignore[arg-type]
    n, c, h, w = x.shape
    if attrs["mode"] == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return np.ascontiguousarray(y.reshape(n, c // (b * b), h * b, w * b))


@depth_to_space.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, b, out = ins[0], int(attrs["blocksize"]), outs[0]  # type: ignore[arg-type]

    def fn(n: E.Var, c: E.Var, y: E.Var, w: E.Var) -> E.Expr:
        i, j = y % b, w % b  # the offset in the block
        depth = (i * b + j) * out.shape[1] + c if attrs["mode"] == "DCR" else (c * b + i) * b + j
        return x[n, depth, y // b, w // b]

    return compute(out.shape, fn, "depth_to_space")


@space_to_depth.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, b = data_input(ins), int(attrs["blocksize"])  # type: ignore[arg-type]
    if x.rank != 4 or b < 1 or x.shape[2] % b or x.shape[3] % b:
        raise ValueError(f"needs a 4-d input whose height and width divide by blocksize {b}")
    _check_mode(attrs)
    n, c, h, w = x.shape
    return TensorType((n, c * b * b, h // b, w // b), x.dtype)


@space_to_depth.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, b = ins[0], int(attrs["blocksize"])  # type: ignore[arg-type]
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.transpose(0, 3, 5, 1, 2, 4) if attrs["mode"] == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
    return np.ascontiguousarray(y.reshape(n, c * b * b, h // b, w // b))


@space_to_depth.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, b = ins[0], int(attrs["blocksize"])  # type: ignore[arg-type]
    channels = x.shape[1]

    def fn(n: E.Var, k: E.Var, h: E.Var, w: E.Var) -> E.Expr:
        if attrs["mode"] == "DCR":  # k = (i * b + j) * C + c
            i, j, c = k // (b * channels), k // channels % b, k % channels
        else:  # k = (c * b + i) * b + j
            i, j, c = k // b % b, k % b, k // (b * b)
        return x[n, c, h * b + i, w * b + j]

    return compute(outs[0].shape, fn, "space_to_depth")

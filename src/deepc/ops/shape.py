"""Data-movement ops with static attributes: reshape, transpose, concat, slice and kin."""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute
from deepc.ir.types import TensorType
from deepc.ops.common import broadcast_index, broadcast_shape, present
from deepc.ops.registry import FusionKind, Op


def _first(ins: Sequence[TensorType | None]) -> TensorType:
    x = ins[0]
    if x is None:
        raise ValueError("the data input is missing")
    return x


def _ints(attrs: Attrs, key: str) -> tuple[int, ...]:
    return tuple(int(v) for v in attrs[key])  # type: ignore[union-attr]


def empty_output(out: TensorType, name: str) -> Tensor | None:
    """A stage for an output with no elements (its body never runs), or None if it has some.
    Index formulas divide by extents, so ops call this before building them."""
    if out.size:
        return None
    return compute(out.shape, lambda *i: E.const(0, out.dtype), name)


def _strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return strides[::-1]


def reshape_index(i: Sequence[E.Expr], out_shape: Sequence[int],
                  in_shape: Sequence[int]) -> list[E.Expr]:
    """Input indices of a row-major reshape. Leading and trailing axes that the reshape keeps
    map straight through; only the axes in between go through a flat offset."""
    lo = 0
    while lo < min(len(out_shape), len(in_shape)) and out_shape[lo] == in_shape[lo]:
        lo += 1
    hi = 0
    while (hi < min(len(out_shape), len(in_shape)) - lo
           and out_shape[-1 - hi] == in_shape[-1 - hi]):
        hi += 1
    o_mid, i_mid = out_shape[lo:len(out_shape) - hi], in_shape[lo:len(in_shape) - hi]
    flat: E.Expr = E.Const(0, E.INDEX)
    for k, stride in zip(range(lo, lo + len(o_mid)), _strides(o_mid)):
        flat = flat + E.as_expr(i[k]) * stride
    mid: list[E.Expr] = []
    for k, (d, stride) in enumerate(zip(i_mid, _strides(i_mid))):
        j = flat // stride if d > 1 else E.Const(0, E.INDEX)
        mid.append(j % d if k and d > 1 else j)  # the first axis needs no modulo
    return [*i[:lo], *mid, *i[len(i) - hi:]]


# -- reshape ------------------------------------------------------------------------------------
reshape = Op("reshape", FusionKind.INJECTIVE,
             doc="row-major reshape to attrs['shape'], a full static shape (no 0 or -1)")


@reshape.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, shape = _first(ins), _ints(attrs, "shape")
    if any(d < 0 for d in shape):
        raise ValueError(f"reshape target {shape} has a negative dimension")
    if prod(shape) != x.size:
        raise ValueError(f"cannot reshape {x.size} elements to {shape}")
    return TensorType(shape, x.dtype)


@reshape.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.reshape(ins[0], _ints(attrs, "shape"))


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
    x, perm = _first(ins), _ints(attrs, "perm")
    if sorted(perm) != list(range(x.rank)):
        raise ValueError(f"perm {perm} is not a permutation of the {x.rank} axes")
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


@transpose.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(ins[0], _ints(attrs, "perm")))


@transpose.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, perm = ins[0], _ints(attrs, "perm")

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
    x, shape = _first(ins), _ints(attrs, "shape")
    if broadcast_shape(x.shape, shape) != shape:
        raise ValueError(f"{x.shape} does not broadcast to {shape}")
    return TensorType(shape, x.dtype)


@broadcast_to.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return 0  # pure data movement


@broadcast_to.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.array(np.broadcast_to(ins[0], _ints(attrs, "shape")))


@broadcast_to.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    return compute(outs[0].shape, lambda *i: x[broadcast_index(i, x.shape)], "broadcast_to")


# -- tile ---------------------------------------------------------------------------------------
tile = Op("tile", FusionKind.INJECTIVE, doc="repeat x attrs['repeats'][i] times along axis i")


@tile.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x, reps = _first(ins), _ints(attrs, "repeats")
    if len(reps) != x.rank or any(r < 0 for r in reps):
        raise ValueError(f"repeats {reps} must be {x.rank} non-negative counts")
    return TensorType(tuple(d * r for d, r in zip(x.shape, reps)), x.dtype)


@tile.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.tile(ins[0], _ints(attrs, "repeats"))


@tile.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, reps = ins[0], _ints(attrs, "repeats")
    return empty_output(outs[0], "tile") or compute(outs[0].shape, lambda *i: x[tuple(
        0 if d == 1 else o if r == 1 else o % d for o, d, r in zip(i, x.shape, reps))], "tile")


# -- concat -------------------------------------------------------------------------------------
concat = Op("concat", FusionKind.INJECTIVE, doc="join the inputs along attrs['axis'] (>= 0)")


@concat.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    xs, axis = present(ins), int(attrs["axis"])  # type: ignore[arg-type]
    if not xs:
        raise ValueError("concat needs at least one input")
    first = xs[0]
    if not 0 <= axis < first.rank:
        raise ValueError(f"axis {axis} out of range for rank {first.rank}")
    for x in xs[1:]:
        if x.dtype != first.dtype:
            raise ValueError(f"mixed dtypes {first.dtype} and {x.dtype}")
        if x.rank != first.rank or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis):
            raise ValueError(f"shapes {first.shape} and {x.shape} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(tuple(shape), first.dtype)


@concat.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return np.concatenate(present(ins), axis=int(attrs["axis"]))  # type: ignore[arg-type]


@concat.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    axis = int(attrs["axis"])  # type: ignore[arg-type]
    empty = empty_output(outs[0], "concat")
    if empty is not None:
        return empty
    parts, offset = [], 0  # (input, its first index on the axis), empty inputs dropped
    for x in present(ins):
        if x.shape[axis]:
            parts.append((x, offset))
            offset += x.shape[axis]

    def fn(*i: E.Var) -> E.Expr:
        def load(x: Tensor, start: int) -> E.Expr:
            return x[(*i[:axis], i[axis] - start, *i[axis + 1:])]

        # a chain of selects, each guarding the loads of one input
        value = load(*parts[-1])
        for x, start in reversed(parts[:-1]):
            value = E.select(i[axis] < start + x.shape[axis], load(x, start), value)
        return value

    return compute(outs[0].shape, fn, "concat")


# -- split --------------------------------------------------------------------------------------
split = Op("split", FusionKind.INJECTIVE,
           doc="cut x along attrs['axis'] (>= 0) into pieces of attrs['sizes']; one output each")


@split.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> list[TensorType]:
    x, axis, sizes = _first(ins), int(attrs["axis"]), _ints(attrs, "sizes")  # type: ignore[arg-type]
    if not 0 <= axis < x.rank:
        raise ValueError(f"axis {axis} out of range for rank {x.rank}")
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ValueError(f"sizes {sizes} do not add up to dimension {x.shape[axis]}")
    return [TensorType((*x.shape[:axis], s, *x.shape[axis + 1:]), x.dtype) for s in sizes]


@split.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> tuple[np.ndarray, ...]:
    bounds = np.cumsum(_ints(attrs, "sizes"))[:-1]
    parts = np.split(ins[0], bounds, axis=int(attrs["axis"]))  # type: ignore[arg-type]
    return tuple(np.ascontiguousarray(p) for p in parts)


@split.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> list[Tensor]:
    x, axis = ins[0], int(attrs["axis"])  # type: ignore[arg-type]
    starts = np.cumsum((0, *_ints(attrs, "sizes")))

    def piece(k: int, start: int) -> Tensor:
        return compute(outs[k].shape, lambda *i: x[(*i[:axis], i[axis] + start, *i[axis + 1:])],
                       f"split{k}")

    return [piece(k, int(s)) for k, s in enumerate(starts[:-1])]


# -- slice --------------------------------------------------------------------------------------
slice_ = Op("slice", FusionKind.INJECTIVE, doc="""strided slice, attributes normalized:

out[..., i, ...] = x[..., starts[k] + i * steps[k], ...] along each listed axis, where
- `axes`: distinct axes in [0, rank), ascending; axes not listed are taken whole;
- `steps`: non-zero integers;
- `starts`: first index read, in [0, dim) (0 when the slice is empty);
- `ends`: exclusive end in [-1, dim]; -1 only with a negative step (run down through index 0),
  equal to `starts` when the slice is empty.
The length along axis k is max(0, ceil((ends[k] - starts[k]) / steps[k])). The converter
resolves ONNX's negative and out-of-range starts/ends into this form.""")


def slice_lengths(shape: Sequence[int], attrs: Attrs) -> tuple[int, ...]:
    out = list(shape)
    for a, s, e, st in zip(_ints(attrs, "axes"), _ints(attrs, "starts"), _ints(attrs, "ends"),
                           _ints(attrs, "steps")):
        out[a] = max(0, -((s - e) // st))  # ceil division by a signed step
    return tuple(out)


@slice_.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = _first(ins)
    axes, starts, ends, steps = (_ints(attrs, k) for k in ("axes", "starts", "ends", "steps"))
    if not len(axes) == len(starts) == len(ends) == len(steps):
        raise ValueError("axes, starts, ends and steps differ in length")
    if list(axes) != sorted(set(axes)) or any(not 0 <= a < x.rank for a in axes):
        raise ValueError(f"axes {axes} must be distinct, ascending and in [0, {x.rank})")
    if 0 in steps:
        raise ValueError(f"steps {steps} contain 0")
    lengths = slice_lengths(x.shape, attrs)
    for a, s, e, st in zip(axes, starts, ends, steps):
        dim, last = x.shape[a], s + (lengths[a] - 1) * st
        if (lengths[a] and not (0 <= s < dim and 0 <= last < dim)):
            raise ValueError(f"axis {a}: start {s}, end {e}, step {st} are not normalized "
                             f"for dimension {dim}")
    return TensorType(lengths, x.dtype)


@slice_.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    index = [slice(None)] * ins[0].ndim
    for a, s, e, st in zip(_ints(attrs, "axes"), _ints(attrs, "starts"), _ints(attrs, "ends"),
                           _ints(attrs, "steps")):
        index[a] = slice(s, e if e >= 0 else None, st)  # end -1: through index 0
    return np.ascontiguousarray(ins[0][tuple(index)])


@slice_.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x = ins[0]
    first = dict.fromkeys(range(x.rank), 0)
    step = dict.fromkeys(range(x.rank), 1)
    for a, s, st in zip(_ints(attrs, "axes"), _ints(attrs, "starts"), _ints(attrs, "steps")):
        first[a], step[a] = s, st
    return compute(outs[0].shape, lambda *i: x[tuple(
        first[k] + o * step[k] for k, o in enumerate(i))], "slice")


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
    x, b = _first(ins), int(attrs["blocksize"])  # type: ignore[arg-type]
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
    x, b = _first(ins), int(attrs["blocksize"])  # type: ignore[arg-type]
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

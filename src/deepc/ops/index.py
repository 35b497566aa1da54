"""Indexing ops: gathers, scatters, one_hot and trilu, with ONNX's negative-index convention."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import reduce
from math import prod
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.loop import Buffer, For, ForKind, IfThenElse, Seq, Stmt, Store, seq
from deepc.ir.tensor import Tensor, compute, extern
from deepc.ir.types import TensorType, np_dtype
from deepc.ops.registry import FusionKind, Op

INDEX_DTYPES = ("int32", "int64")
SCATTER_REDUCTIONS = {
    "add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum,
}


def _types(ins: Sequence[TensorType | None], n: int) -> list[TensorType]:
    got = list(ins[:n])
    if len(got) < n or any(t is None for t in got):
        raise ValueError(f"expects {n} inputs")
    return got  # type: ignore[return-value]


def _check_indices(ty: TensorType, what: str = "indices") -> None:
    if ty.dtype not in INDEX_DTYPES:
        raise ValueError(f"{what} must be int32 or int64, not {ty.dtype}")


def _check_axis(axis: int, rank: int) -> int:
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} is not a normalized axis of a rank-{rank} tensor")
    return axis


def wrap_indices(idx: np.ndarray, extent: int) -> np.ndarray:
    """Indices in [-extent, extent) as non-negative int64; anything else is an IndexError."""
    idx = np.asarray(idx).astype(np.int64, copy=False)
    if idx.size and (idx.min() < -extent or idx.max() >= extent):
        bad = idx[(idx < -extent) | (idx >= extent)].reshape(-1)[0]
        raise IndexError(f"index {bad} is out of range for an axis of size {extent}")
    return np.where(idx < 0, idx + extent, idx)


def _element_index(idx: np.ndarray, axis: int, extent: int) -> tuple[np.ndarray, ...]:
    """The numpy index that reads `data[i_0, .., idx[i], .., i_r]` for every position i."""
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = wrap_indices(idx, extent)
    return tuple(grid)


def _scatter(out: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray,
             reduction: str) -> np.ndarray:
    if reduction == "none":
        # duplicate targets are undefined in ONNX; numpy, like onnxruntime, keeps the last
        out[where] = updates
    else:
        SCATTER_REDUCTIONS[reduction].at(out, where, updates)
    return out


def wrap_index(raw: E.Expr, extent: int) -> E.Expr:
    """An index value as int64 (a float one truncates) with ONNX's convention: [-extent, 0)
    counts from the end."""
    i = raw.astype("int64")
    return E.select(i < 0, i + extent, i)


def clamped_index(raw: E.Expr, extent: int) -> E.Expr:
    """wrap_index clamped into [0, extent): an invalid index (the reference raises) reads an
    element at the edge, never outside the buffer."""
    return E.minimum(E.maximum(wrap_index(raw, extent), 0), extent - 1)


def in_range(raw: E.Expr, extent: int) -> E.Expr:
    return (raw.astype("int64") >= -extent) & (raw.astype("int64") < extent)


def loop_nest(shape: Sequence[int], prefix: str, body: Callable[[tuple[E.Var, ...]], Stmt]
              ) -> Stmt:
    """Serial loops over `shape` (outermost first, variables `prefix0`, `prefix1`...) around
    `body(loop variables)`: the skeleton of hand-written (extern) loop nests."""
    vs = tuple(E.Var(f"{prefix}{d}") for d in range(len(shape)))
    stmt = body(vs)
    for v, n in reversed(list(zip(vs, shape))):
        stmt = For(v, n, ForKind.SERIAL, stmt)
    return stmt


def row_loops(rows: Sequence[int], prefix: str, body: Callable[[tuple[E.Var, ...]], Stmt]
              ) -> Stmt:
    """Loops over independent rows (a schedule may spread them over threads) around
    `body(row variables)`, which holds loops that must run in order (a scan, updates that
    may hit one element twice). Default schedules spread and vectorize perfect loop nests,
    so the body is kept from continuing one and a single row still gets its loop: until the
    loop IR can mark a loop as ordered, this keeps schedules off the ordered loops."""

    def guarded(vs: tuple[E.Var, ...]) -> Stmt:
        stmt = body(vs if rows else ())
        return Seq((stmt,)) if isinstance(stmt, For) else stmt

    return loop_nest(tuple(rows) or (1,), prefix, guarded)


def _check_reduction(attrs: Attrs) -> None:
    reduction = attrs.get("reduction", "none")
    if reduction != "none" and reduction not in SCATTER_REDUCTIONS:
        raise ValueError(f"unknown scatter reduction {reduction!r}")


_COMBINE: dict[str, Callable[[E.Expr, E.Expr], E.Expr]] = {
    "none": lambda old, new: new, "add": lambda a, b: a + b, "mul": lambda a, b: a * b,
    "max": E.maximum, "min": E.minimum,
}


def _scatter_compute(name: str, ins: Sequence[Any], attrs: Attrs, lead: int,
                     where: Callable[[Buffer, tuple[E.Var, ...]], dict[int, E.Expr]]) -> Tensor:
    """Copy data, then visit updates in order: the last duplicate wins (or they reduce), as
    in the reference. Update u (its `lead` leading indices) goes where the dims in
    `where(indices, u)` take those raw index values and the others u's; its trailing dims
    are a slice written whole. Updates at invalid indices (the reference raises) are skipped."""
    data = ins[0]
    combine = _COMBINE[str(attrs.get("reduction", "none"))]

    def build(bufs: Sequence[Buffer], out_bufs: Sequence[Buffer]) -> Stmt:
        (src, idx, upd), (out,) = bufs, out_bufs

        def update(u: tuple[E.Var, ...]) -> Stmt:
            raws = where(idx, u)
            target = [wrap_index(raws[d], src.shape[d]) if d in raws else u[d]
                      for d in range(len(src.shape) - len(upd.shape) + lead)]
            valid = reduce(operator.and_, (in_range(r, src.shape[d]) for d, r in raws.items()))

            def store(s: tuple[E.Var, ...]) -> Stmt:
                return Store(out, (*target, *s), combine(out[(*target, *s)], upd[(*u, *s)]))

            return IfThenElse(valid, loop_nest(upd.shape[lead:], f"{name}_s", store))

        copy = loop_nest(src.shape, f"{name}_c", lambda i: Store(out, i, src[i]))
        return seq(copy, row_loops((), f"{name}_once", lambda _: loop_nest(
            upd.shape[:lead], f"{name}_u", update)))

    return extern(name, ins[:3], [(data.shape, data.dtype)], build)[0]


# -- gather -----------------------------------------------------------------------------------
gather = Op("gather", FusionKind.INJECTIVE,
            doc="take slices of data along attrs['axis'] at indices (negative ones wrap)")


@gather.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = _types(ins, 2)
    _check_indices(idx)
    axis = _check_axis(int(attrs["axis"]), data.rank)
    return TensorType(data.shape[:axis] + idx.shape + data.shape[axis + 1:], data.dtype)


@gather.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    axis = int(attrs["axis"])
    return np.take(data, wrap_indices(idx, data.shape[axis]), axis=axis)


@gather.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx = ins[0], ins[1]
    axis, q = int(attrs["axis"]), idx.rank

    def fn(*o: E.Var) -> E.Expr:
        pos = clamped_index(idx[o[axis:axis + q]], data.shape[axis])
        return data[(*o[:axis], pos, *o[axis + q:])]

    return compute(outs[0].shape, fn, "gather")


# -- gather_elements --------------------------------------------------------------------------
gather_elements = Op("gather_elements", FusionKind.INJECTIVE,
                     doc="out[i] = data[i with axis component replaced by indices[i]]")


@gather_elements.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = _types(ins, 2)
    _check_indices(idx)
    axis = _check_axis(int(attrs["axis"]), data.rank)
    if idx.rank != data.rank:
        raise ValueError(f"indices have rank {idx.rank}, data rank {data.rank}; they must match")
    if any(i > d for k, (i, d) in enumerate(zip(idx.shape, data.shape)) if k != axis):
        raise ValueError("indices are larger than data outside the gather axis")
    return TensorType(idx.shape, data.dtype)


@gather_elements.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    axis = int(attrs["axis"])
    return data[_element_index(idx, axis, data.shape[axis])]


@gather_elements.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx, axis = ins[0], ins[1], int(attrs["axis"])
    return compute(outs[0].shape, lambda *o: data[
        (*o[:axis], clamped_index(idx[o], data.shape[axis]), *o[axis + 1:])], "gather_elements")


# -- gather_nd --------------------------------------------------------------------------------
gather_nd = Op("gather_nd", FusionKind.INJECTIVE,
               doc="index data by the last axis of indices (k coordinates), after batch_dims")


@gather_nd.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx = _types(ins, 2)
    _check_indices(idx)
    b = int(attrs["batch_dims"])
    if idx.rank < 1 or not 0 <= b < min(data.rank, idx.rank):
        raise ValueError(f"batch_dims {b} must be below both ranks ({data.rank}, {idx.rank})")
    if data.shape[:b] != idx.shape[:b]:
        raise ValueError(f"batch dimensions differ: {data.shape[:b]} vs {idx.shape[:b]}")
    k = idx.shape[-1]
    if not 1 <= k <= data.rank - b:
        raise ValueError(f"indices' last dimension {k} must be in [1, {data.rank - b}]")
    return TensorType(idx.shape[:-1] + data.shape[b + k:], data.dtype)


@gather_nd.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx = ins[0], ins[1]
    b = int(attrs["batch_dims"])
    k = idx.shape[-1]
    batch = prod(data.shape[:b])
    flat_data = data.reshape((batch, *data.shape[b:]))
    flat_idx = idx.reshape((batch, prod(idx.shape[b:-1]), k))
    where = (np.broadcast_to(np.arange(batch)[:, None], flat_idx.shape[:2]),
             *(wrap_indices(flat_idx[..., j], data.shape[b + j]) for j in range(k)))
    return flat_data[where].reshape(idx.shape[:-1] + data.shape[b + k:])


@gather_nd.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    data, idx = ins[0], ins[1]
    b, q, k = int(attrs["batch_dims"]), idx.rank, idx.shape[-1]

    def fn(*o: E.Var) -> E.Expr:
        coords = (clamped_index(idx[(*o[:q - 1], j)], data.shape[b + j]) for j in range(k))
        return data[(*o[:b], *coords, *o[q - 1:])]

    return compute(outs[0].shape, fn, "gather_nd")


# -- scatter_elements -------------------------------------------------------------------------
scatter_elements = Op("scatter_elements", FusionKind.OPAQUE,
                      doc="copy of data with updates written (or reduced) at gather_elements "
                          "positions; attrs axis, reduction none|add|mul|max|min")


@scatter_elements.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx, upd = _types(ins, 3)
    _check_indices(idx)
    _check_reduction(attrs)
    axis = _check_axis(int(attrs["axis"]), data.rank)
    if idx.rank != data.rank or upd.shape != idx.shape:
        raise ValueError("indices and updates must have data's rank and one shape")
    if any(i > d for k, (i, d) in enumerate(zip(idx.shape, data.shape)) if k != axis):
        raise ValueError("indices are larger than data outside the scatter axis")
    if upd.dtype != data.dtype:
        raise ValueError(f"updates are {upd.dtype}, data {data.dtype}")
    return data


@scatter_elements.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx, upd = ins[0], ins[1], ins[2]
    axis = int(attrs["axis"])
    where = _element_index(idx, axis, data.shape[axis])
    return _scatter(data.copy(), where, upd, str(attrs.get("reduction", "none")))


@scatter_elements.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    axis = int(attrs["axis"])
    return _scatter_compute("scatter_elements", ins, attrs, ins[1].rank,
                            lambda idx, u: {axis: idx[u]})


# -- scatter_nd -------------------------------------------------------------------------------
scatter_nd = Op("scatter_nd", FusionKind.OPAQUE,
                doc="copy of data with update slices written (or reduced) at k-d indices")


@scatter_nd.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    data, idx, upd = _types(ins, 3)
    _check_indices(idx)
    _check_reduction(attrs)
    if idx.rank < 1 or not 1 <= idx.shape[-1] <= data.rank:
        raise ValueError(f"indices' last dimension must be in [1, {data.rank}]")
    want = idx.shape[:-1] + data.shape[idx.shape[-1]:]
    if upd.shape != want:
        raise ValueError(f"updates have shape {upd.shape}, expected {want}")
    if upd.dtype != data.dtype:
        raise ValueError(f"updates are {upd.dtype}, data {data.dtype}")
    return data


@scatter_nd.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    data, idx, upd = ins[0], ins[1], ins[2]
    where = tuple(wrap_indices(idx[..., j], data.shape[j]) for j in range(idx.shape[-1]))
    return _scatter(data.copy(), where, upd, str(attrs.get("reduction", "none")))


@scatter_nd.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    q, k = ins[1].rank, ins[1].shape[-1]
    return _scatter_compute("scatter_nd", ins, attrs, q - 1,
                            lambda idx, u: {j: idx[(*u, j)] for j in range(k)})


# -- one_hot ----------------------------------------------------------------------------------
one_hot = Op("one_hot", FusionKind.INJECTIVE,
             doc="a new axis of size depth at attrs['axis']: on_value where it equals the "
                 "index (negative ones wrap), off_value elsewhere; output dtype attrs['dtype']")


@one_hot.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    (idx,) = _types(ins, 1)
    if idx.dtype in ("bool", "string"):
        raise ValueError(f"indices must be numeric, not {idx.dtype}")
    axis = _check_axis(int(attrs["axis"]), idx.rank + 1)
    depth = int(attrs["depth"])
    if depth < 0:
        raise ValueError(f"depth {depth} is negative")
    return TensorType((*idx.shape[:axis], depth, *idx.shape[axis:]), str(attrs["dtype"]))


@one_hot.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    axis, depth = int(attrs["axis"]), int(attrs["depth"])
    # fractional indices are truncated, as onnxruntime casts them to int64
    idx = np.trunc(ins[0]) if ins[0].dtype.kind == "f" else ins[0]
    idx = idx.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)  # out-of-range ones match nothing: all off
    positions = np.arange(depth).reshape([-1 if d == axis else 1 for d in range(idx.ndim + 1)])
    hot = np.expand_dims(idx, axis) == positions
    dtype = np_dtype(str(attrs["dtype"]))
    on, off = np.asarray(attrs["on_value"], dtype), np.asarray(attrs["off_value"], dtype)
    return np.where(hot, on, off)


@one_hot.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    idx = ins[0]
    axis, depth, dtype = int(attrs["axis"]), int(attrs["depth"]), outs[0].dtype
    on, off = E.const(attrs["on_value"], dtype), E.const(attrs["off_value"], dtype)

    def fn(*o: E.Var) -> E.Expr:
        # a float index truncates toward zero in the cast, as in the reference
        hot = wrap_index(idx[(*o[:axis], *o[axis + 1:])], depth).eq(o[axis])
        return E.select(hot, on, off)

    return compute(outs[0].shape, fn, "one_hot")


# -- trilu ------------------------------------------------------------------------------------
# out[.., i, j] depends only on x[.., i, j] and (i, j): elementwise with an index predicate
trilu = Op("trilu", FusionKind.ELEMWISE,
           doc="keep the upper (j - i >= k) or lower (j - i <= k) triangle of the last two "
               "axes, zero elsewhere")


@trilu.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    (x,) = _types(ins, 1)
    if x.rank < 2:
        raise ValueError(f"needs rank >= 2, got rank {x.rank}")
    return x


@trilu.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, k = ins[0], int(attrs["k"])
    return np.triu(x, k) if attrs["upper"] else np.tril(x, k)


@trilu.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, k, upper = ins[0], int(attrs["k"]), bool(attrs["upper"])

    def fn(*o: E.Var) -> E.Expr:
        keep = o[-1] - o[-2] >= k if upper else o[-1] - o[-2] <= k
        return E.select(keep, x[o], E.const(0, x.dtype))

    return compute(x.shape, fn, "trilu")

"""Contraction ops: `matmul` (numpy semantics), `gemm` and `einsum`."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.common import broadcast_index, broadcast_shape
from deepc.ops.conv import acc_dtype, exact_dtype
from deepc.ops.registry import FusionKind, Op


def _same_dtype(ins: Sequence[TensorType | None]) -> str:
    dtypes = {t.dtype for t in ins if t is not None}
    if len(dtypes) != 1:
        raise ValueError(f"operands must share one dtype, got {', '.join(sorted(dtypes))}")
    return dtypes.pop()


def acc_of(dtype: str) -> str:
    """The accumulator dtype of a contraction: float16 sums in float32, others in their own
    dtype (integers wrap as in onnxruntime)."""
    return acc_dtype(np.dtype(dtype)).name


def cast_out(y: Tensor, dtype: str, name: str) -> Tensor:
    """y itself, or an epilogue stage casting it to `dtype`."""
    return y if y.dtype == dtype else compute(y.shape, lambda *i: y[i].astype(dtype), name)


def contract(fn, *xs: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Apply a contraction summing floats in float64 (see `exact_dtype`); the result has
    xs[0]'s dtype."""
    acc = exact_dtype(xs[0].dtype)
    return np.asarray(fn(*(x.astype(acc, copy=False) for x in xs))).astype(xs[0].dtype,
                                                                            copy=False)


# -- matmul -------------------------------------------------------------------------------------
matmul = Op("matmul", FusionKind.OUT_FUSABLE,
            doc="numpy matmul: batch dims broadcast, a 1-D operand is a vector")


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if not a or not b:
        raise ValueError("matmul operands must have rank >= 1")
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise ValueError(f"inner dimensions {a2[-1]} and {b2[-2]} differ")
    out = (*broadcast_shape(a2[:-2], b2[:-2]), a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@matmul.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    a, b = ins
    assert a is not None and b is not None
    return TensorType(matmul_shape(a.shape, b.shape), _same_dtype(ins))


@matmul.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    return contract(np.matmul, ins[0], ins[1])


@matmul.def_compute
def _(ins: Sequence[Tensor], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """out[*batch, i, j] = sum_k a[*batch', i, k] * b[*batch'', k, j], where a 1-D operand has
    no i (or j) axis and batch indices broadcast."""
    a, b = ins
    out = outs[0]
    acc = acc_of(out.dtype)
    k = reduce_axis(a.shape[-1], "matmul.k")
    batch = len(out.shape) - (a.rank > 1) - (b.rank > 1)

    def body(*idx: E.Expr) -> E.Expr:
        lead, rows = idx[:batch], list(idx[batch:])
        i = rows.pop(0) if a.rank > 1 else None
        j = rows.pop(0) if b.rank > 1 else None
        av = a[(*broadcast_index(lead, a.shape[:-2]), i, k)] if i is not None else a[k]
        bv = b[(*broadcast_index(lead, b.shape[:-2]), k, j)] if j is not None else b[k]
        return rsum(av.astype(acc) * bv.astype(acc), k)

    return cast_out(compute(out.shape, body, "matmul"), out.dtype, "matmul_cast")


@matmul.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    a = ins[0]
    assert a is not None
    return 2 * outs[0].size * a.shape[-1]


# -- gemm ---------------------------------------------------------------------------------------
gemm = Op("gemm", FusionKind.OUT_FUSABLE,
          doc="alpha * A' @ B' + beta * C, A' = A or A^T (trans_a), B' likewise (trans_b); "
              "optional C broadcasts to [M, N]; attrs alpha, beta, trans_a, trans_b")


@gemm.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    assert a is not None and b is not None
    if a.rank != 2 or b.rank != 2:
        raise ValueError(f"A and B must be matrices, got {a} and {b}")
    m, k = a.shape[::-1] if attrs.get("trans_a", 0) else a.shape
    kb, n = b.shape[::-1] if attrs.get("trans_b", 0) else b.shape
    if k != kb:
        raise ValueError(f"inner dimensions {k} and {kb} differ")
    if c is not None and broadcast_shape(c.shape, (m, n)) != (m, n):
        raise ValueError(f"C {c} does not broadcast to [{m}, {n}]")
    return TensorType((m, n), _same_dtype(ins))


def _gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None, attrs: Attrs) -> np.ndarray:
    a = a.T if attrs.get("trans_a", 0) else a
    b = b.T if attrs.get("trans_b", 0) else b
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    y = a @ b
    if alpha != 1:
        y = y * alpha
    if c is not None:
        y = y + (c if beta == 1 else c * beta)
    return y


@gemm.reference
def _(ins: Sequence[np.ndarray | None], attrs: Attrs) -> np.ndarray:
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    assert a is not None and b is not None
    if c is None:
        return contract(lambda x, y: _gemm(x, y, None, attrs), a, b)
    return contract(lambda x, y, z: _gemm(x, y, z, attrs), a, b, c)


@gemm.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """A reduction over k, then the epilogue alpha * acc + beta * C[broadcast]."""
    a, b = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 else None
    assert a is not None and b is not None
    out = outs[0]
    ta, tb = attrs.get("trans_a", 0), attrs.get("trans_b", 0)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    acc = acc_of(out.dtype)
    k = reduce_axis(a.shape[0] if ta else a.shape[1], "gemm.k")
    ab = compute(out.shape, lambda i, j: rsum(
        (a[k, i] if ta else a[i, k]).astype(acc) * (b[j, k] if tb else b[k, j]).astype(acc), k),
        "gemm")
    if alpha == 1 and c is None:
        return cast_out(ab, out.dtype, "gemm_cast")
    # integers scaled by a fraction go through float64 as the reference's numpy promotion does
    scaled = acc if acc.startswith("float") or (alpha == 1 and beta == 1) else "float64"

    def epilogue(i: E.Expr, j: E.Expr) -> E.Expr:
        y = ab[i, j].astype(scaled)
        if alpha != 1:
            y = y * E.as_expr(alpha, y)
        if c is not None:
            cv = c[broadcast_index((i, j), c.shape)].astype(scaled)
            y = y + (cv if beta == 1 else cv * E.as_expr(beta, cv))
        return y.astype(out.dtype)

    return compute(out.shape, epilogue, "gemm_epilogue")


@gemm.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    a = ins[0]
    assert a is not None
    k = a.shape[0] if attrs.get("trans_a", 0) else a.shape[1]
    return 2 * outs[0].size * k


# -- einsum -------------------------------------------------------------------------------------
einsum = Op("einsum", FusionKind.OUT_FUSABLE,
            doc="Einstein summation; attr equation (explicit '->' or implicit output, '...' "
                "broadcast dims)")


def _split_einsum(equation: str) -> tuple[list[str], str]:
    """The input terms and the output term (implicit: '...' then the letters used once, in
    alphabetical order)."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    if not arrow:
        once = sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1)
        rhs = ("..." if "..." in lhs else "") + "".join(once)
    return lhs.split(","), rhs


def parse_einsum(equation: str, shapes: Sequence[tuple[int, ...]]
                 ) -> tuple[tuple[int, ...], dict[str, int], tuple[int, ...]]:
    """The output shape, the size of every letter and the broadcast shape of '...'."""
    terms, rhs = _split_einsum(equation)
    if len(terms) != len(shapes):
        raise ValueError(f"equation {equation!r} has {len(terms)} operands, got {len(shapes)}")
    sizes: dict[str, int] = {}
    ellipsis: list[tuple[int, ...]] = []
    for term, shape in zip(terms, shapes):
        if not re.fullmatch(r"[A-Za-z]*(\.\.\.)?[A-Za-z]*", term):
            raise ValueError(f"bad einsum term {term!r} in {equation!r}")
        head, dots, tail = term.partition("...")
        n_ell = len(shape) - len(head) - len(tail)
        if n_ell < 0 or (n_ell and not dots):
            raise ValueError(f"term {term!r} does not fit operand shape {shape}")
        if dots:
            ellipsis.append(shape[len(head):len(head) + n_ell])
        letters = head + tail
        dims = shape[:len(head)] + shape[len(shape) - len(tail):]
        for letter, dim in zip(letters, dims):
            known = sizes.get(letter, dim)
            if dim != known and 1 not in (dim, known):
                raise ValueError(f"letter {letter!r} is {known} and {dim} in {equation!r}")
            sizes[letter] = max(dim, known) if 1 in (dim, known) else dim
    ell_shape = broadcast_shape(*ellipsis) if ellipsis else ()
    head, dots, tail = rhs.partition("...")
    for letter in head + tail:
        if letter not in sizes:
            raise ValueError(f"output letter {letter!r} is not in any input of {equation!r}")
    out = (*(sizes[c] for c in head), *(ell_shape if dots else ()), *(sizes[c] for c in tail))
    return out, sizes, ell_shape


Label = str | tuple[str, int]


def einsum_labels(equation: str, shapes: Sequence[tuple[int, ...]]
                  ) -> tuple[list[tuple[Label, ...]], tuple[Label, ...], dict[Label, int]]:
    """Each operand's axis labels, the output's, and the size of every label. Axes under
    '...' are labelled ('...', j), j counting the broadcast ellipsis shape from the left, so
    operands with fewer such axes align to the right."""
    out, sizes, ell_shape = parse_einsum(equation, shapes)
    terms, rhs = _split_einsum(equation)

    def labels(term: str, rank: int) -> tuple[Label, ...]:
        head, _, tail = term.partition("...")
        n_ell = rank - len(head) - len(tail)
        return (*head, *(("...", len(ell_shape) - n_ell + t) for t in range(n_ell)), *tail)

    all_sizes: dict[Label, int] = {**sizes, **{("...", j): n for j, n in enumerate(ell_shape)}}
    return [labels(t, len(s)) for t, s in zip(terms, shapes)], labels(rhs, len(out)), all_sizes


@einsum.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    xs = [t for t in ins if t is not None]
    out, _, _ = parse_einsum(str(attrs["equation"]), [x.shape for x in xs])
    return TensorType(out, _same_dtype(xs))


@einsum.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    eq = str(attrs["equation"]).replace(" ", "")
    return contract(lambda *xs: np.einsum(eq, *xs, optimize=len(xs) > 2), *ins)


@einsum.def_compute
def _(ins: Sequence[Tensor | None], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    """One stage: the product of the operands, summed over the labels not in the output
    (a repeated label reads a diagonal; a size-1 axis against a larger label broadcasts)."""
    xs = [t for t in ins if t is not None]
    out = outs[0]
    in_labels, out_labels, sizes = einsum_labels(str(attrs["equation"]), [x.shape for x in xs])
    summed = [lb for lb in dict.fromkeys(lb for ls in in_labels for lb in ls)
              if lb not in out_labels]
    red = {lb: reduce_axis(sizes[lb], f"einsum.{lb if isinstance(lb, str) else lb[1]}")
           for lb in summed}
    acc = acc_of(out.dtype)

    def body(*idx: E.Expr) -> E.Expr:
        env: dict[Label, E.Expr] = {**dict(zip(out_labels, idx)), **red}
        term: E.Expr | None = None
        for x, labels in zip(xs, in_labels):
            v = x[tuple(E.as_expr(0) if n == 1 < sizes[lb] else env[lb]
                        for lb, n in zip(labels, x.shape))].astype(acc)
            term = v if term is None else term * v
        assert term is not None
        return rsum(term, list(red.values())) if red else term

    return cast_out(compute(out.shape, body, "einsum"), out.dtype, "einsum_cast")


@einsum.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    """A multiply and an add per point of the full iteration space (no contraction order)."""
    xs = [t for t in ins if t is not None]
    _, sizes, ell_shape = parse_einsum(str(attrs["equation"]), [x.shape for x in xs])
    return 2 * math.prod(sizes.values()) * math.prod(ell_shape)

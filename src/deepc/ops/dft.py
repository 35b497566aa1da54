"""dft: the discrete Fourier transform along one axis of a real ([..., 1]) or complex
([..., 2], real and imaginary parts) signal, forward or inverse, full or one-sided.

out[k] = scale * sum_n x[n] * exp(s * 2*pi*i * k*n / N), s = -1 forward and +1 inverse (scale
1/N). A one-sided forward transform keeps k <= N/2; a one-sided inverse reads those and
returns the real signal of length N, completing the spectrum by conjugate symmetry. Sums run
in float64 with the angle reduced exactly (k*n mod N in integers), so spectra that cancel to
zero stay zero to well below float32 resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepc.ir import expr as E
from deepc.ir.graph import Attrs
from deepc.ir.tensor import Tensor, compute, reduce_axis, rsum
from deepc.ir.types import TensorType
from deepc.ops.registry import FusionKind, Op

ACC = "float64"

dft = Op("dft", FusionKind.OPAQUE,
         doc="DFT along attrs['axis'] of x[..., 1 or 2]; attrs length (N), inverse, onesided")


def _out_len(attrs: Attrs) -> int:
    n = int(attrs["length"])
    return n // 2 + 1 if attrs["onesided"] and not attrs["inverse"] else n


@dft.infer
def _(ins: Sequence[TensorType | None], attrs: Attrs) -> TensorType:
    x = ins[0]
    assert x is not None
    axis = int(attrs["axis"])
    if x.rank < 3 or x.shape[-1] not in (1, 2) or not 0 < axis < x.rank - 1:
        raise ValueError(f"needs x[batch, ..., 1 or 2] and a signal axis between, got {x} and "
                         f"axis {axis}")
    if int(attrs["length"]) < 1:
        raise ValueError(f"dft length {attrs['length']} must be positive")
    real_out = bool(attrs["onesided"] and attrs["inverse"])
    shape = [*x.shape[:-1], 1 if real_out else 2]
    shape[axis] = _out_len(attrs)
    return TensorType(tuple(shape), x.dtype)


@dft.reference
def _(ins: Sequence[np.ndarray], attrs: Attrs) -> np.ndarray:
    x, axis, n = ins[0], int(attrs["axis"]), int(attrs["length"])
    xc = x[..., 0].astype(np.complex128)
    if x.shape[-1] == 2:
        xc = xc + 1j * x[..., 1]
    if attrs["inverse"] and attrs["onesided"]:
        return np.fft.irfft(xc, n=n, axis=axis)[..., None].astype(x.dtype)
    y = (np.fft.ifft if attrs["inverse"] else np.fft.fft)(xc, n=n, axis=axis)
    y = np.take(y, np.arange(_out_len(attrs)), axis=axis)
    return np.stack([y.real, y.imag], axis=-1).astype(x.dtype)


@dft.def_compute
def _(ins: Sequence[Any], attrs: Attrs, outs: Sequence[TensorType]) -> Tensor:
    x, axis, n = ins[0], int(attrs["axis"]), int(attrs["length"])
    inverse, half = bool(attrs["inverse"]), bool(attrs["onesided"] and attrs["inverse"])
    size, complex_in = x.shape[axis], x.shape[-1] == 2
    s = 1.0 if inverse else -1.0
    scale = 1.0 / n if inverse else 1.0
    r = reduce_axis(n, "dft.n")

    def parts(o: Sequence[E.Expr]) -> tuple[E.Expr, E.Expr]:
        """The input's real and imaginary parts at position r of the row through o (zero
        beyond its length; mirrored and conjugated past the stored half for `half`)."""
        src, sign = r, None
        if half:  # X[N - r] conjugated for r >= size
            upper = r >= size
            src, sign = E.select(upper, E.as_expr(n) - r, r), upper
        inside = src < size if size < n or half else None
        at = E.minimum(src, E.as_expr(size - 1)) if inside is not None else src

        def load(c: int) -> E.Expr:
            v = x[(*o[:axis], at, *o[axis + 1:-1], c)].astype(ACC)
            return v if inside is None else E.select(inside, v, E.const(0, ACC))

        re = load(0)
        im = load(1) if complex_in else E.const(0, ACC)
        if sign is not None:
            im = E.select(sign, -im, im)
        return re, im

    def part(o: Sequence[E.Expr], imag: bool) -> E.Expr:
        re, im = parts(o)
        k = o[axis]
        angle = ((k * r) % n).astype(ACC) * (2 * math.pi / n)
        c, sn = E.call("cos", angle), E.call("sin", angle) * s
        return rsum(im * c + re * sn if imag else re * c - im * sn, r)

    def body(*o: E.Var) -> E.Expr:
        re = compute_re[o[:-1]]
        value = re if compute_im is None else E.select(o[-1].eq(0), re, compute_im[o[:-1]])
        return (value * scale).astype(outs[0].dtype)

    rows = outs[0].shape[:-1]
    compute_re = compute(rows, lambda *o: part((*o, 0), False), "dft_re")
    compute_im = None if half else compute(rows, lambda *o: part((*o, 0), True), "dft_im")
    return compute(outs[0].shape, body, "dft")


@dft.flops
def _(ins: Sequence[TensorType | None], outs: Sequence[TensorType], attrs: Attrs) -> int:
    return 8 * outs[0].size * int(attrs["length"])

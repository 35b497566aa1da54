"""ONNX ai.onnx.preview.training optimiser steps (Adagrad, Momentum, Adam) as elementwise
arithmetic over each (X, G, state...) group, the learning rate R and step count T being
scalars (T > 0 selects the bias-corrected forms with `where`, so T may be a run-time value)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter

DOMAIN = "ai.onnx.preview.training."


class Arith:
    """Emits elementwise ops of one dtype: `a("mul", x, a.c(0.5))`."""

    def __init__(self, b: GraphBuilder, n: OnnxNode, dtype: str):
        self.b, self.n, self.dtype = b, n, dtype

    def c(self, value: float) -> str:
        return self.b.add_constant(np.array(value, self.dtype))

    def __call__(self, op: str, *xs: str) -> str:
        return self.b.emit1(op, list(xs), name=self.n.name)

    def cast(self, x: str) -> str:
        return self.b.emit1("cast", [x], {"to": self.dtype}, name=self.n.name)

    def axpy(self, a: float, x: str, y: str) -> str:
        """a * x + y."""
        return self("add", self("mul", self.c(a), x), y)


Step = Callable[[Arith, str, str, list[str], OnnxNode], list[str]]


def _groups(b: GraphBuilder, n: OnnxNode, states: int, step: Step) -> None:
    """Inputs R, T, X1..Xk, G1..Gk, then `states` more groups of k; outputs the new X's
    followed by each new state group."""
    r, t, rest = n.inputs[0], n.inputs[1], n.inputs[2:]
    k = len(rest) // (2 + states)
    results: list[list[str]] = []
    for i in range(k):
        x = rest[i]
        a = Arith(b, n, b.type(x).dtype)
        group = [rest[i + j * k] for j in range(2 + states)]
        results.append(step(a, a.cast(r), a.cast(t), group, n))
    flat = [res[j] for j in range(1 + states) for res in results]
    for value, out in zip(flat, n.outputs):
        if out:
            b.emit("identity", [value], outputs=[out], name=n.name)


def _regularized(a: Arith, x: str, g: str, n: OnnxNode) -> str:
    return a.axpy(float(n.attr("norm_coefficient", 0.0)), x, g)


def _adagrad(a: Arith, r: str, t: str, group: list[str], n: OnnxNode) -> list[str]:
    x, g, h = group
    rate = a("div", r, a.axpy(float(n.attr("decay_factor", 0.0)), t, a.c(1.0)))
    gr = _regularized(a, x, g, n)
    h_new = a("add", h, a("mul", gr, gr))
    scaled = a("div", a("mul", rate, gr), a("add", a("sqrt", h_new), a.c(n.attr("epsilon", 0.0))))
    return [a("sub", x, scaled), h_new]


def _momentum(a: Arith, r: str, t: str, group: list[str], n: OnnxNode) -> list[str]:
    x, g, v = group
    alpha, beta = float(n.attr("alpha")), float(n.attr("beta"))
    gr = _regularized(a, x, g, n)
    beta_t = a("where", a("greater", t, a.c(0.0)), a.c(beta), a.c(1.0))
    v_new = a.axpy(alpha, v, a("mul", beta_t, gr))
    step = v_new if n.attr("mode", "standard") == "standard" else a.axpy(alpha, v_new, gr)
    return [a("sub", x, a("mul", r, step)), v_new]


def _adam(a: Arith, r: str, t: str, group: list[str], n: OnnxNode) -> list[str]:
    x, g, v, h = group
    alpha, beta = float(n.attr("alpha", 0.9)), float(n.attr("beta", 0.999))
    gr = _regularized(a, x, g, n)
    v_new = a.axpy(alpha, v, a("mul", a.c(1 - alpha), gr))
    h_new = a.axpy(beta, h, a("mul", a.c(1 - beta), a("mul", gr, gr)))
    h_sqrt = a("add", a("sqrt", h_new), a.c(float(n.attr("epsilon", 1e-6))))
    corrected = a("div", a("mul", r, a("sqrt", a("sub", a.c(1.0), a("pow", a.c(beta), t)))),
                  a("sub", a.c(1.0), a("pow", a.c(alpha), t)))
    rate = a("where", a("greater", t, a.c(0.0)), corrected, r)
    x_new = a("sub", x, a("mul", rate, a("div", v_new, h_sqrt)))
    post = float(n.attr("norm_coefficient_post", 0.0))
    return [a("mul", a.c(1 - post), x_new), v_new, h_new]


@converter(DOMAIN + "Adagrad")
def adagrad(b: GraphBuilder, n: OnnxNode) -> None:
    _groups(b, n, 1, _adagrad)


@converter(DOMAIN + "Momentum")
def momentum(b: GraphBuilder, n: OnnxNode) -> None:
    _groups(b, n, 1, _momentum)


@converter(DOMAIN + "Adam")
def adam(b: GraphBuilder, n: OnnxNode) -> None:
    _groups(b, n, 2, _adam)

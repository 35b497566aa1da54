"""Graph IR: canonical text, verifier, immutability."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepc.errors import VerifyError
from deepc.frontends import load
from deepc.ir.graph import Attrs, Graph, Node
from deepc.ir.text import graph_to_text
from deepc.ir.types import TensorType
from deepc.passes.verify import verify_graph
from tests.test_cli import EXAMPLE


def small_graph() -> Graph:
    t = TensorType((2, 3), "float32")
    return Graph("g", ("x",), ("y",), (Node("relu", ("x",), ("a",), name="r"),
                                       Node("add", ("a", "c"), ("y",), name="s")),
                 {"x": t, "a": t, "c": t, "y": t}, {"c": np.ones((2, 3), np.float32)})


def test_text_form_is_stable_and_complete() -> None:
    g = small_graph()
    text = graph_to_text(g)
    assert text == graph_to_text(small_graph())
    assert "%a: float32[2x3] = relu(%x)" in text and "return %y" in text


def test_verifier_accepts_imported_models() -> None:
    verify_graph(load(EXAMPLE))


def test_verifier_names_use_before_definition() -> None:
    g = small_graph()
    bad = g.replace(nodes=tuple(reversed(g.nodes)))
    with pytest.raises(VerifyError, match="used before it is defined"):
        verify_graph(bad)


def test_verifier_checks_types_against_the_rule() -> None:
    g = small_graph()
    types = dict(g.types)
    types["y"] = TensorType((3, 2), "float32")
    with pytest.raises(VerifyError, match="type rule"):
        verify_graph(g.replace(types=types))


def test_nodes_and_attrs_are_immutable() -> None:
    node = Node("clip", ("x",), ("y",), Attrs({"min": 0.0, "max": [1, 2]}))
    assert node.attrs["max"] == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.op = "relu"  # type: ignore[misc]
    assert hash(node.attrs) == hash(Attrs({"max": (1, 2), "min": 0.0}))

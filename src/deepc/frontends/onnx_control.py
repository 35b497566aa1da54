"""ONNX control flow to plain ONNX nodes: Scan unrolled over its static length, Loop over its
(compile-time) trip count, If resolved by its (compile-time) condition.

A static-shape graph has no loops or branches between kernels; a Scan's trip count is its
inputs' length along the scan axis, so its body is instantiated once per step (each copy's
values renamed under the node's name and the step), and an If's condition must be a constant
(a model input deciding it is specialised by the caller, as for shape-fixing inputs). The
nodes returned are converted like any others, so the steps compile like straight-line code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from deepc.errors import ConversionError, NeedsConstantError
from deepc.frontends.builder import GraphBuilder

Nodes = list[onnx.NodeProto]


def _graph_attr(node: onnx.NodeProto, key: str) -> onnx.GraphProto:
    for a in node.attribute:
        if a.name == key:
            return a.g
    raise ConversionError(f"node {node.name!r} ({node.op_type}): no {key} graph")


def _ints(node: onnx.NodeProto, key: str, n: int) -> list[int]:
    for a in node.attribute:
        if a.name == key:
            return list(a.ints)
    return [0] * n


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def inline_graph(graph: onnx.GraphProto, prefix: str, bound: dict[str, str]) -> Nodes:
    """The graph's nodes with its inputs bound to outer values (`bound`: formal -> actual)
    and every value it defines renamed under `prefix`; values it reads from the enclosing
    scope keep their names. `bound` gains the renamed outputs."""
    names = dict(bound)
    out: Nodes = []
    for t in graph.initializer:
        names[t.name] = prefix + t.name
        out.append(_const(prefix + t.name, numpy_helper.to_array(t)))
    for node in graph.node:
        for o in node.output:
            if o:
                names[o] = prefix + o
    for k, node in enumerate(graph.node):
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.name = f"{prefix}{node.name or node.op_type + str(k)}"
        new.input[:] = [names.get(i, i) for i in node.input]
        new.output[:] = [names.get(o, o) for o in node.output]
        for a in new.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                rename_captured(a.g, names)
        out.append(new)
    bound.update({o.name: names.get(o.name, o.name) for o in graph.output})
    return out


def rename_captured(graph: onnx.GraphProto, names: dict[str, str]) -> None:
    """In a subgraph (a Scan or If body), the renamed body values it reads from the
    enclosing scope; the values it defines itself keep their names."""
    own = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    own |= {o for node in graph.node for o in node.output}
    for node in graph.node:
        node.input[:] = [names[i] if i in names and i not in own else i for i in node.input]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                rename_captured(a.g, {k: v for k, v in names.items() if k not in own})
    for o in graph.output:
        if o.name in names and o.name not in own:
            o.name = names[o.name]


def unroll_scan(node: onnx.NodeProto, b: GraphBuilder, index: int, opset: int) -> Nodes:
    """Scan (opset 9 and up): per step, each scan input's slice (a Gather at the step) and
    the states feed a copy of the body; the scan outputs' per-step values are stacked along
    their axes (Unsqueeze, Concat), the last states become the node's first outputs."""
    if opset < 9:
        raise ConversionError(f"node {node.name!r} (Scan): the opset-8 form (batched, with "
                              "sequence_lens) is not supported; re-export at opset 9 or newer")
    body = _graph_attr(node, "body")
    m = next(a.i for a in node.attribute if a.name == "num_scan_inputs")
    n_state = len(node.input) - m
    k_out = len(body.output) - n_state
    in_axes, in_dirs = _ints(node, "scan_input_axes", m), _ints(node, "scan_input_directions", m)
    out_axes = _ints(node, "scan_output_axes", k_out)
    out_dirs = _ints(node, "scan_output_directions", k_out)
    scans = list(node.input[n_state:])
    first = b.type(scans[0])
    steps = first.shape[in_axes[0] % first.rank] if scans else 0
    prefix = f"{node.name or 'Scan' + str(index)}/"
    nodes: Nodes = []
    states = list(node.input[:n_state])
    per_step: list[list[str]] = [[] for _ in range(k_out)]
    for t in range(steps):
        step = f"{prefix}{t}/"
        bound = dict(zip((i.name for i in body.input[:n_state]), states))
        for j, (formal, scan) in enumerate(zip(body.input[n_state:], scans)):
            at = step + f"at{j}"
            nodes.append(_const(at, np.array(steps - 1 - t if in_dirs[j] else t, np.int64)))
            nodes.append(helper.make_node("Gather", [scan, at], [step + formal.name],
                                          axis=in_axes[j]))
            bound[formal.name] = step + formal.name
        nodes += inline_graph(body, step, bound)
        results = [bound[o.name] for o in body.output]
        states = results[:n_state]
        for j, value in enumerate(results[n_state:]):
            per_step[j].append(value)
    for out, state in zip(node.output[:n_state], states):
        if out:
            nodes.append(helper.make_node("Identity", [state], [out]))
    for j, out in enumerate(node.output[n_state:]):
        if not out:
            continue
        values = per_step[j][::-1] if out_dirs[j] else per_step[j]
        _stack(values, out_axes[j], out, f"{prefix}stack{j}", opset, nodes)
    return nodes


def _stack(values: list[str], axis: int, out: str, name: str, opset: int, nodes: Nodes) -> None:
    """out = the per-step values stacked along a new `axis` (Unsqueeze each, Concat)."""
    parts = [_unsqueeze(v, axis, f"{name}_{t}", opset, nodes) for t, v in enumerate(values)]
    nodes.append(helper.make_node("Concat", parts, [out], axis=axis))


def _passes_through(graph: onnx.GraphProto, out: str, value: str) -> bool:
    """Whether graph output `out` is `value` itself or Identity copies of it."""
    producers = {o: n for n in graph.node for o in n.output}
    while out != value:
        node = producers.get(out)
        if node is None or node.op_type != "Identity":
            return False
        out = node.input[0]
    return True


def unroll_loop(node: onnx.NodeProto, b: GraphBuilder, index: int, opset: int) -> Nodes:
    """Loop with a compile-time trip count and a condition that stays true (the body passes
    it through): one body copy per iteration, the iteration number a constant; the scan
    outputs stacked along a new first axis. A loop that may exit early has a data-dependent
    trip count, which a static-shape graph cannot hold."""
    body = _graph_attr(node, "body")
    name = node.name or f"Loop{index}"
    trip, cond = node.input[0], node.input[1] if len(node.input) > 1 else ""
    if not trip:
        raise ConversionError(f"node {name!r} (Loop): no trip count; a loop bounded only by "
                              "its condition has a data-dependent length")
    count = b.const(trip)
    if count is None:
        raise NeedsConstantError(f"node {name!r} (Loop): the trip count must be known at "
                                 "compile time but is computed at run time", trip)
    if cond and b.const(cond) is None:
        raise NeedsConstantError(f"node {name!r} (Loop): the initial condition must be known "
                                 "at compile time but is computed at run time", cond)
    steps = int(np.asarray(count).reshape(-1)[0])
    if cond and not bool(np.asarray(b.const(cond)).reshape(-1)[0]):
        steps = 0
    if steps < 1 or not _passes_through(body, body.output[0].name, body.input[1].name):
        raise ConversionError(f"node {name!r} (Loop): only loops that run their full trip "
                              f"count (here {steps}) with a condition the body passes through "
                              "are supported")
    n_state = len(node.input) - 2
    prefix = f"{name}/"
    nodes: Nodes = []
    states = list(node.input[2:])
    per_step: list[list[str]] = [[] for _ in body.output[1 + n_state:]]
    for i in range(steps):
        step = f"{prefix}{i}/"
        nodes.append(_const(step + "iter", np.array(i, np.int64)))
        nodes.append(_const(step + "cond", np.array(True)))
        formal = [v.name for v in body.input]
        bound = dict(zip(formal, [step + "iter", step + "cond", *states]))
        nodes += inline_graph(body, step, bound)
        results = [bound[o.name] for o in body.output]
        states = results[1:1 + n_state]
        for j, value in enumerate(results[1 + n_state:]):
            per_step[j].append(value)
    for out, state in zip(node.output[:n_state], states):
        if out:
            nodes.append(helper.make_node("Identity", [state], [out]))
    for j, out in enumerate(node.output[n_state:]):
        if out:
            _stack(per_step[j], 0, out, f"{prefix}stack{j}", opset, nodes)
    return nodes


def _unsqueeze(value: str, axis: int, name: str, opset: int, nodes: Nodes) -> str:
    if opset >= 13:
        nodes.append(_const(name + "/axes", np.array([axis], np.int64)))
        nodes.append(helper.make_node("Unsqueeze", [value, name + "/axes"], [name]))
    else:
        nodes.append(helper.make_node("Unsqueeze", [value], [name], axes=[axis]))
    return name


def resolve_if(node: onnx.NodeProto, b: GraphBuilder, index: int, opset: int) -> Nodes:
    """If: the branch its (compile-time) condition picks, its outputs copied to the node's."""
    cond = b.const(node.input[0])
    if cond is None:
        raise NeedsConstantError(f"node {node.name!r} (If): the condition must be known at "
                                 "compile time but is computed at run time", node.input[0])
    branch = _graph_attr(node, "then_branch" if bool(np.asarray(cond).reshape(-1)[0])
                         else "else_branch")
    bound: dict[str, str] = {}
    nodes = inline_graph(branch, f"{node.name or 'If' + str(index)}/", bound)
    nodes += [helper.make_node("Identity", [bound[o.name]], [out])
              for o, out in zip(branch.output, node.output) if out]
    return nodes


CONTROL: dict[str, Callable[[onnx.NodeProto, GraphBuilder, int, int], Nodes]] = {
    "Scan": unroll_scan, "If": resolve_if, "Loop": unroll_loop,
}

"""What the fuzz tests share: small valid models, their mutations, and the one check every
run of the CLI must pass (exit 0 with onnxruntime's numbers, or exit 2 with one line)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from deepc.cli_run import safe_filename
from tests.helpers import run_ort


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
           outputs: list[onnx.ValueInfoProto], inits: list[tuple[str, np.ndarray]],
           name: str) -> bytes:
    tensors = [numpy_helper.from_array(a, n) for n, a in inits]
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _mlp() -> bytes:
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["z"], name="mm2"),
             helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=-1)]
    inits = [("w1", rng.standard_normal((8, 16)).astype(np.float32)),
             ("b1", rng.standard_normal(16).astype(np.float32)),
             ("w2", rng.standard_normal((16, 4)).astype(np.float32))]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits, "mlp")


def _embed() -> bytes:
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], name="embed"),
             helper.make_node("Tanh", ["e"], ["t"], name="tanh"),
             helper.make_node("ReduceMean", ["t"], ["y"], name="mean", axes=[1], keepdims=0)]
    inits = [("table", rng.standard_normal((10, 6)).astype(np.float32))]
    return _model(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])], inits,
                  "embed")


BASES = {"mlp": _mlp(), "embed": _embed()}
HUGE = [2**31, 2**40, 2**62]
MUTATIONS = ["flip", "truncate", "drop_node", "dup_node", "drop_init", "dup_init", "dtype",
             "init_dtype", "huge_dim", "cycle", "op_type", "output_name", "dup_output"]


def _set_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    del graph.node[:]
    graph.node.extend(nodes)


@st.composite
def mutated_models(draw: st.DrawFn) -> tuple[str, bytes]:
    """(what was done, the model's bytes): one valid base model, mutated once."""
    base = draw(st.sampled_from(sorted(BASES)))
    kind = draw(st.sampled_from(MUTATIONS))
    data = BASES[base]
    if kind == "flip":
        flipped = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            flipped[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
        return f"{base}: {kind}", bytes(flipped)
    if kind == "truncate":
        return f"{base}: {kind}", data[:draw(st.integers(0, len(data) - 1))]
    model = onnx.load_from_string(data)
    g = model.graph
    nodes = list(g.node)
    i = draw(st.integers(0, len(nodes) - 1))
    if kind == "drop_node":
        _set_nodes(g, nodes[:i] + nodes[i + 1:])
    elif kind == "dup_node":
        copy = onnx.NodeProto()
        copy.CopyFrom(nodes[i])
        nodes.insert(draw(st.integers(0, len(nodes))), copy)
        _set_nodes(g, nodes)
    elif kind == "drop_init":
        del g.initializer[draw(st.integers(0, len(g.initializer) - 1))]
    elif kind == "dup_init":
        g.initializer.append(g.initializer[draw(st.integers(0, len(g.initializer) - 1))])
    elif kind == "dtype":
        g.input[0].type.tensor_type.elem_type = draw(st.integers(0, 30))
    elif kind == "init_dtype":
        g.initializer[0].data_type = draw(st.integers(0, 30))
    elif kind == "huge_dim":
        dims = g.input[0].type.tensor_type.shape.dim
        dims[draw(st.integers(0, len(dims) - 1))].dim_value = draw(st.sampled_from(HUGE))
    elif kind == "cycle":  # node i reads the output of itself or of a later node
        later = nodes[draw(st.integers(i, len(nodes) - 1))]
        g.node[i].input[0] = later.output[0]
    elif kind == "op_type":
        g.node[i].op_type = draw(st.sampled_from(["", "Reluu", "relu", "Conv", "Gather", "Add",
                                                   "Identity", "\x00"]))
    elif kind == "output_name":
        g.output[0].name = draw(st.sampled_from(["nowhere", "", "x", "r"]))
    elif kind == "dup_output":
        g.output.append(g.output[0])
    return f"{base}: {kind} at node {i}", model.SerializeToString()


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: the CLI runs in this process."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def check_answer(what: str, code: int, err: str, model: Path, out: Path) -> None:
    """Exit 0 and `deepc run` giving onnxruntime's numbers, or exit 2 with one `error:` line
    (notes and progress aside) and no output file: never a traceback, a crash or a
    half-written file."""
    lines = [ln for ln in err.splitlines()
             if ln.strip() and not ln.startswith(("note:", "deepc: "))]
    assert "Traceback" not in err, f"{what}: {err}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error:"), f"{what}: {err}"
        assert sorted(p.name for p in out.parent.iterdir()) == sorted([model.name]), what
        return
    assert code == 0, f"{what}: exit {code}: {err}"
    import deepc
    from tests.test_cli import run

    bundle = deepc.load(out)
    feeds = bundle.random_inputs(seed=3)
    args = []
    for name, value in feeds.items():
        np.save(out.parent / f"in_{name}.npy", value)
        args += ["-i", f"{name}={out.parent / f'in_{name}.npy'}"]
    code, _, err = run("run", str(out), *args, "-d", str(out.parent / "outs"))
    assert code == 0, f"{what}: deepc run: exit {code}: {err}"
    theirs = run_ort(onnx.load(str(model)), feeds)
    for spec, want in zip(bundle.outputs, theirs):
        got = np.load(out.parent / "outs" / f"{safe_filename(spec.name)}.npy")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=what)


UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg"]
BINARY = ["Add", "Mul", "Sub", "Max", "Min"]


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[str, bytes]:
    """A small random graph of supported ops over one float input: elementwise ops (against
    values of the same shape or broadcast constants), transposes, reductions, softmax,
    matmuls by constant weights, flattens and concats."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    values: list[tuple[str, tuple[int, ...]]] = [("x", shape)]
    nodes: list[onnx.NodeProto] = []
    inits: list[tuple[str, np.ndarray]] = []
    for k in range(draw(st.integers(1, 6))):
        name, s = values[draw(st.integers(0, len(values) - 1))]
        out, op = f"v{k}", draw(st.sampled_from(["unary", "binary", "Transpose", "ReduceMean",
                                                 "Softmax", "MatMul", "Flatten", "Concat"]))
        if op == "unary":
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [name], [out]))
        elif op == "binary":
            same = [v for v, t in values if t == s]
            if draw(st.booleans()):
                other = draw(st.sampled_from(same))
            else:
                other = f"c{k}"
                inits.append((other, rng.standard_normal(s[draw(st.integers(0, len(s))):])
                              .astype(np.float32)))
            nodes.append(helper.make_node(draw(st.sampled_from(BINARY)), [name, other], [out]))
        elif op == "Transpose":
            perm = draw(st.permutations(range(len(s))))
            nodes.append(helper.make_node(op, [name], [out], perm=list(perm)))
            s = tuple(s[p] for p in perm)
        elif op == "ReduceMean":
            axis, keep = draw(st.integers(0, len(s) - 1)), draw(st.integers(0, 1))
            if len(s) == 1 and not keep:
                continue
            nodes.append(helper.make_node(op, [name], [out], axes=[axis], keepdims=keep))
            s = tuple(1 if i == axis else d for i, d in enumerate(s) if keep or i != axis)
        elif op == "Softmax":
            nodes.append(helper.make_node(op, [name], [out], axis=-1))
        elif op == "MatMul":
            n = draw(st.integers(1, 5))
            inits.append((f"w{k}", rng.standard_normal((s[-1], n)).astype(np.float32)))
            nodes.append(helper.make_node(op, [name, f"w{k}"], [out]))
            s = (*s[:-1], n)
        elif op == "Flatten":
            nodes.append(helper.make_node(op, [name], [out], axis=1))
            s = (s[0], int(np.prod(s[1:])))
        else:  # Concat with itself along a random axis
            axis = draw(st.integers(0, len(s) - 1))
            nodes.append(helper.make_node(op, [name, name], [out], axis=axis))
            s = tuple(2 * d if i == axis else d for i, d in enumerate(s))
        values.append((out, s))
    if not nodes:
        nodes.append(helper.make_node("Relu", ["x"], ["v0"]))
        values.append(("v0", shape))
    last, s = values[-1]
    data = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                  [helper.make_tensor_value_info(last, TensorProto.FLOAT, list(s))], inits,
                  "random")
    return " -> ".join(n.op_type for n in nodes), data

import warnings

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from deepc.compiler.jit_graph import run_graph_jit
from deepc.errors import ConversionError, ShapeError
from deepc.frontends.onnx import convert
from deepc.ir.graph import Attrs
from deepc.ir.types import TensorType
from deepc.ops import get_op
from tests.conftest import shared_model
from tests.helpers import check_compiled, check_op, node_model, run_deepc, run_ort

SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
N_OUT = {"LSTM": 3, "GRU": 2, "RNN": 2}
N_ACT = {"LSTM": 3, "GRU": 2, "RNN": 1}
TOL = {"rtol": 1e-4, "atol": 1e-5}
DIRECTIONS = ["forward", "reverse", "bidirectional"]


def inputs(op, dirs=1, *, bias=True, lens=None, initial=True, peepholes=False, seed=0,
           seq=SEQ):
    """Seeded inputs in ONNX order; omitted optional inputs are None."""
    rng = np.random.default_rng(seed)

    def t(*shape):
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    rows = GATES[op] * HIDDEN
    ins = {"x": t(seq, BATCH, INPUT), "w": t(dirs, rows, INPUT), "r": t(dirs, rows, HIDDEN),
           "b": t(dirs, 2 * rows) if bias else None,
           "sl": None if lens is None else np.array(lens, np.int32),
           "h0": t(dirs, BATCH, HIDDEN) if initial else None}
    if op == "LSTM":
        ins["c0"] = t(dirs, BATCH, HIDDEN) if initial else None
        ins["p"] = t(dirs, 3 * HIDDEN) if peepholes else None
    while ins[list(ins)[-1]] is None:  # trailing omitted inputs are left out
        ins.popitem()
    return ins


@pytest.fixture(params=[check_op, check_compiled], ids=["reference", "compiled"])
def check(request):
    """Each case runs through the numpy reference and through the compute definition compiled
    by the LLVM backend (an extern, which the numpy tensor-expression evaluator cannot run)."""
    def run(op, ins, **attrs):
        return request.param(op, ins, n_outputs=N_OUT[op], hidden_size=HIDDEN, **TOL, **attrs)

    return run


def run_compiled(model, feeds):
    graph = convert(model, {k: tuple(v.shape) for k, v in feeds.items()})
    out = run_graph_jit(graph, feeds)
    return [out[name] for name in graph.outputs]


@pytest.fixture(params=[run_deepc, run_compiled], ids=["reference", "compiled"])
def run(request):
    """Runs a model through deepc's interpreter, or node by node through compiled kernels."""
    return request.param


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_all_inputs(op, direction, check):
    dirs = 2 if direction == "bidirectional" else 1
    check(op, inputs(op, dirs, lens=[5, 3, 1], peepholes=True), direction=direction)


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_required_inputs_only(op, direction, check):
    dirs = 2 if direction == "bidirectional" else 1
    check(op, inputs(op, dirs, bias=False, initial=False), direction=direction)


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize(("bias", "initial"), [(True, False), (False, True)])
def test_optional_inputs(op, bias, initial, check):
    check(op, inputs(op, 2, bias=bias, initial=initial), direction="bidirectional")


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_sequence_lens(op, direction, check):
    """Rows past their length are zero in Y; Y_h is the state at the last valid step; an
    empty sequence ends with zero states."""
    dirs = 2 if direction == "bidirectional" else 1
    check(op, inputs(op, dirs, lens=[2, 5, 0]), direction=direction)
    check(op, inputs(op, dirs, lens=[4, 4, 4], initial=False), direction=direction)


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("seq", [6, 8])
def test_input_sums_in_step_blocks(op, seq, check):
    """Sequences that steps divide into blocks (3 or 4 steps share each load of W), both
    directions, one row shorter than the rest."""
    check(op, inputs(op, 2, seq=seq, lens=[seq, seq - 1, 2]), direction="bidirectional")


@pytest.mark.parametrize("opset", [7, 13, 14, 22])
@pytest.mark.parametrize("op", list(GATES))
def test_opsets(op, opset, check):
    check(op, inputs(op, 2, lens=[5, 2, 3]), direction="bidirectional", opset=opset)


def test_lstm_peepholes_without_initial_state(check):
    check("LSTM", inputs("LSTM", 2, initial=False, peepholes=True), direction="bidirectional")


@pytest.mark.parametrize("peepholes", [False, True])
def test_lstm_input_forget(peepholes, check):
    check("LSTM", inputs("LSTM", 2, peepholes=peepholes), direction="bidirectional",
          input_forget=1)


@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gru_linear_before_reset(lbr, direction, check):
    dirs = 2 if direction == "bidirectional" else 1
    check("GRU", inputs("GRU", dirs, lens=[5, 4, 2]), direction=direction,
          linear_before_reset=lbr)


@pytest.mark.parametrize("op", list(GATES))
def test_clip(op, check):
    ins = inputs(op, 2, lens=[3, 5, 1], peepholes=True)
    check(op, ins, direction="bidirectional", clip=0.25)
    if op == "GRU":
        check(op, ins, direction="bidirectional", clip=0.25, linear_before_reset=1)
    if op == "LSTM":
        check(op, ins, direction="bidirectional", clip=0.25, input_forget=1)


# Explicit alphas and betas: onnxruntime defaults Affine, ScaledTanh and ThresholdedRelu to 0
# where the ONNX spec takes the defaults of the operators of the same name.
ACTIVATIONS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
               "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"]


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("op", list(GATES))
def test_activations(op, act, check):
    k = N_ACT[op]
    # A Softplus gate grows the state without bound until onnxruntime's log(1 + exp(x))
    # overflows; keep the gate a sigmoid there.
    acts = ["Sigmoid" if act == "Softplus" and k > 1 else act] + [act] * (k - 1)
    check(op, inputs(op, 1, lens=[5, 3, 4]), activations=acts,
          activation_alpha=[0.3] * k, activation_beta=[0.2] * k)


@pytest.mark.parametrize("op", list(GATES))
def test_activation_params_consumed_in_order(op, check):
    """Alphas and betas go only to the functions that take them, in order, per direction;
    missing ones take the defaults (LeakyRelu 0.01, HardSigmoid 0.2/0.5, Elu 1.0)."""
    per_dir = {"LSTM": [["HardSigmoid", "LeakyRelu", "Elu"], ["Sigmoid", "Tanh", "LeakyRelu"]],
               "GRU": [["HardSigmoid", "LeakyRelu"], ["Sigmoid", "Elu"]],
               "RNN": [["LeakyRelu"], ["Elu"]]}[op]
    ins = inputs(op, 2)
    check(op, ins, direction="bidirectional", activations=per_dir[0] + per_dir[1],
          activation_alpha=[0.15, 0.05], activation_beta=[0.45])
    check(op, ins, direction="bidirectional", activations=per_dir[0] + per_dir[1])


def test_rnn_extra_default_activation_is_ignored(check):
    """The RNN schema's default activations list two; one direction uses the first."""
    check("RNN", inputs("RNN", 1), activations=["Relu", "Tanh"])


def test_activation_attrs_normalized():
    model = node_model("LSTM", inputs("LSTM", 1), 3, hidden_size=HIDDEN,
                       activations=["Affine", "ScaledTanh", "thresholdedrelu"],
                       activation_alpha=[2.0])
    node = convert(model).nodes[0]
    assert node.op == "lstm"
    assert node.attr("activations") == ("affine", "scaled_tanh", "thresholded_relu")
    assert node.attr("activation_alpha") == (2.0, 1.0, 1.0)
    assert node.attr("activation_beta") == (0.0, 1.0, 0.0)
    assert node.attr("clip") is None and node.attr("layout") == 0
    assert node.attr("input_forget") == 0 and node.attr("direction") == "forward"


def test_hidden_size_from_r(run):
    """hidden_size is optional in the schema (onnxruntime insists on it): R's last dim."""
    ins = inputs("GRU", 1)
    feeds = {k: v for k, v in ins.items() if v is not None}
    actual = run(node_model("GRU", ins, 2), feeds)
    expected = run_ort(node_model("GRU", ins, 2, hidden_size=HIDDEN), feeds)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **TOL)


# -- layout 1: onnxruntime runs only layout 0, so it computes on transposed tensors ------------
def _batch_major(ins):
    out = dict(ins)
    for k in ("x", "h0", "c0"):
        if out.get(k) is not None:
            out[k] = np.ascontiguousarray(out[k].transpose(1, 0, 2))
    return out


@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_layout_batch_major(op, direction, run):
    dirs = 2 if direction == "bidirectional" else 1
    ins = inputs(op, dirs, lens=[5, 2, 4], peepholes=True)
    feeds = {k: v for k, v in ins.items() if v is not None}
    expected = run_ort(node_model(op, ins, N_OUT[op], opset=14, hidden_size=HIDDEN,
                                  direction=direction), feeds)
    ins1 = _batch_major(ins)
    model = node_model(op, ins1, N_OUT[op], opset=14, hidden_size=HIDDEN, direction=direction,
                       layout=1)
    actual = run(model, {k: v for k, v in ins1.items() if v is not None})
    np.testing.assert_allclose(actual[0], expected[0].transpose(2, 0, 1, 3), **TOL)
    for a, e in zip(actual[1:], expected[1:]):
        np.testing.assert_allclose(a, e.transpose(1, 0, 2), **TOL)


def test_layout_ignored_before_opset_14():
    graph = convert(node_model("RNN", inputs("RNN"), 2, opset=13, hidden_size=HIDDEN))
    assert graph.nodes[0].attr("layout") == 0


# -- omitted outputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("op", list(GATES))
@pytest.mark.parametrize("keep", [(1,), (0,), (2,), (0, 2)])
def test_omitted_outputs(op, keep, run, request):
    keep = tuple(k for k in keep if k < N_OUT[op])
    if not keep:
        return
    ins = inputs(op, 2, lens=[5, 1, 3])
    model = node_model(op, ins, N_OUT[op], hidden_size=HIDDEN, direction="bidirectional")
    node, graph = model.graph.node[0], model.graph
    names = [o if i in keep else "" for i, o in enumerate(node.output)]
    while names[-1] == "":
        names.pop()
    del node.output[:]
    node.output.extend(names)
    kept = [o for o in graph.output if o.name in names]
    del graph.output[:]
    graph.output.extend(kept)
    feeds = {k: v for k, v in ins.items() if v is not None}
    actual, expected = run(model, feeds), run_ort(model, feeds)
    assert len(actual) == len(expected) == len(keep)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **TOL)


def test_outputs_lowered_in_any_order():
    """However the outputs of a node are ordered for lowering, each gets its own values."""
    from deepc.backends.llvm.codegen import emit_module
    from deepc.backends.llvm.machine import JitModule, MachineSpec, optimize
    from deepc.ir.lower import lower
    from deepc.lowering.te_graph import node_compute, node_placeholders

    ins = inputs("LSTM", 2, lens=[5, 2, 3])
    model = node_model("LSTM", ins, 3, hidden_size=HIDDEN, direction="bidirectional")
    feeds = {k: v for k, v in ins.items() if v is not None}
    graph = convert(model, {k: v.shape for k, v in feeds.items()})
    node = graph.nodes[0]
    phs = node_placeholders(graph, node)
    outs = node_compute(node, phs, [graph.types[o] for o in node.outputs])
    order = [2, 0, 1]
    func = lower([t for t in phs if t is not None], [outs[k] for k in order], "lstm")
    jit = JitModule(optimize(emit_module([func]), MachineSpec.host()))
    args = [np.ascontiguousarray(feeds[name]) for name in node.inputs if name]
    results = [np.zeros(outs[k].shape, np.float32) for k in order]
    jit.kernel(func.name, len(args) + 3)(*[a.ctypes.data for a in args + results])
    expected = run_ort(model, feeds)
    for k, got in zip(order, results):
        np.testing.assert_allclose(got, expected[k], **TOL)


# -- type rule, errors, flops -------------------------------------------------------------------
def _attrs(**over):
    base = {"direction": "forward", "hidden_size": HIDDEN, "activations": ("tanh",),
            "activation_alpha": (0.0,), "activation_beta": (0.0,), "clip": None, "layout": 0}
    return Attrs({**base, **over})


def test_infer_and_flops():
    op = get_op("rnn")
    x = TensorType((SEQ, BATCH, INPUT), "float32")
    w = TensorType((1, HIDDEN, INPUT), "float32")
    r = TensorType((1, HIDDEN, HIDDEN), "float32")
    y, yh = op.infer_types([x, w, r], _attrs())
    assert y == TensorType((SEQ, 1, BATCH, HIDDEN), "float32")
    assert yh == TensorType((1, BATCH, HIDDEN), "float32")
    assert op.estimate_flops([x, w, r], [y, yh], _attrs()) == \
        2 * SEQ * BATCH * HIDDEN * (INPUT + HIDDEN)
    with pytest.raises(ValueError, match="R must have shape"):
        op.infer_types([x, w, TensorType((1, HIDDEN, 3), "float32")], _attrs())
    with pytest.raises(ValueError, match="activations"):
        op.infer_types([x, w, r], _attrs(activations=("tanh", "tanh")))
    lstm_flops = get_op("lstm").estimate_flops(
        [x, TensorType((2, 4 * HIDDEN, INPUT), "float32")], [],
        _attrs(direction="bidirectional", activations=("sigmoid", "tanh", "tanh") * 2))
    assert lstm_flops == 2 * 2 * SEQ * BATCH * 4 * HIDDEN * (INPUT + HIDDEN)


def test_bad_weight_shape_is_shape_error():
    ins = inputs("GRU", 1)
    ins["r"] = ins["r"][:, :, :4]
    with pytest.raises(ShapeError, match="R must have shape"):
        convert(node_model("GRU", ins, 2, hidden_size=HIDDEN))


@pytest.mark.parametrize("attrs", [{"activations": ["Swish"]}, {"direction": "sideways"},
                                   {"activations": ["Tanh"], "direction": "bidirectional"}])
def test_bad_attrs_are_conversion_errors(attrs):
    with pytest.raises(ConversionError):
        convert(node_model("RNN", inputs("RNN", 2 if "direction" in attrs else 1), 2,
                           hidden_size=HIDDEN, **attrs))


# -- conformance cases shipped with onnx (layout 1 included) ------------------------------------
@pytest.fixture(scope="module")
def onnx_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return [c for c in cases if c.model.graph.node[0].op_type in GATES]


@pytest.mark.parametrize("op", list(GATES))
def test_onnx_conformance_cases(onnx_cases, op, run):
    cases = [c for c in onnx_cases if c.model.graph.node[0].op_type == op]
    assert cases
    for case in cases:
        for ins, expected in case.data_sets:
            graph = case.model.graph
            feeds = {vi.name: v for vi, v in zip(graph.input, ins)}
            actual = run(case.model, feeds)
            for a, e in zip(actual, expected):
                np.testing.assert_allclose(a, e, **TOL, err_msg=case.name)


# -- the shared LSTM language model ---------------------------------------------------------------
@pytest.mark.models
def test_shared_lstm_model_nodes(run):
    """Each LSTM node of models/lstm.onnx, with its weights, against onnxruntime."""
    model = onnx.load(str(shared_model("lstm")))
    inits = {t.name: t for t in model.graph.initializer}
    rng = np.random.default_rng(0)
    lstms = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 2
    for node in lstms:
        w = numpy_helper.to_array(inits[node.input[1]])
        dirs, hidden = w.shape[0], w.shape[1] // 4
        feeds = {"X": rng.standard_normal((32, 1, w.shape[2])).astype(np.float32),
                 "H0": rng.standard_normal((dirs, 1, hidden)).astype(np.float32) * 0.5,
                 "C0": rng.standard_normal((dirs, 1, hidden)).astype(np.float32) * 0.5}
        names = ["X", *node.input[1:5], "H0", "C0"]
        copy = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], name=node.name)
        copy.attribute.extend(node.attribute)
        graph = helper.make_graph(
            [copy], "lstm_node",
            [helper.make_tensor_value_info(k, onnx.TensorProto.FLOAT, v.shape)
             for k, v in feeds.items()],
            [helper.make_value_info(o, onnx.TypeProto()) for o in ("Y", "Y_h", "Y_c")],
            initializer=[inits[name] for name in node.input[1:4]])
        one = helper.make_model(graph, opset_imports=model.opset_import)
        for a, e in zip(run(one, feeds), run_ort(one, feeds)):
            np.testing.assert_allclose(a, e, **TOL)

"""The pass manager and its CLI options: pipelines by name, disabled passes, IR dumps, pass
times, the verifier after every pass, and one-line errors for unknown pass names."""

from __future__ import annotations

import json

import pytest

from deepc.errors import VerifyError
from deepc.ir.graph import Graph
from deepc.passes import PASSES, PIPELINES, PassContext, UnknownPassError, run_pipeline
from deepc.passes import manager as manager_module
from tests.passes.support import Net, ops, weights
from tests.test_cli import EXAMPLE, assert_one_line_error, run


def small_graph() -> Graph:
    n = Net(x=(1, 3, 4, 4))
    w = n("transpose", n.const(weights(3, 2, 1, 1)), perm=(1, 0, 2, 3))  # folds
    c = n("conv", "x", w)
    y = n("identity", n("mul", c, n.const(weights(2, 1, 1))))
    return n.graph(n("relu", y))


def test_every_pipeline_names_registered_passes() -> None:
    assert set(PIPELINES) == {0, 1, 2, 3}
    for level, names in PIPELINES.items():
        assert all(name in PASSES for name in names), level
    assert PIPELINES[0] == [] and {"fold", "dce"} <= set(PIPELINES[1])
    assert {"cse", "simplify", "fuse"} <= set(PIPELINES[2]) <= set(PIPELINES[3])


def test_levels_simplify_more_and_more() -> None:
    graph = small_graph()
    counts = [len(run_pipeline(graph, level).nodes) for level in range(4)]
    assert counts[0] == len(graph.nodes) > counts[1] > counts[2] == counts[3]


def test_disabled_passes_are_skipped_and_times_recorded() -> None:
    ctx = PassContext(2, disabled=frozenset({"simplify", "fuse"}))
    out = run_pipeline(small_graph(), 2, ctx)
    assert ops(out) == ["conv", "mul", "identity", "relu"]
    assert [name for name, _ in ctx.times] == [p for p in PIPELINES[2]
                                               if p not in ("simplify", "fuse")]
    assert all(seconds >= 0 for _, seconds in ctx.times)


def test_print_after_collects_the_canonical_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPC_PRINT_AFTER", "fold, dce")
    ctx = PassContext(2, print_after=frozenset({"simplify"}))
    run_pipeline(small_graph(), 2, ctx)
    assert [name for name, _ in ctx.dumps] == [p for p in PIPELINES[2]
                                               if p in ("fold", "simplify", "dce")]
    after_simplify = dict(ctx.dumps)["simplify"]
    assert after_simplify.startswith("graph t(") and "identity" not in after_simplify


def test_unknown_pass_names_list_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownPassError, match=r"known passes: .*simplify"):
        run_pipeline(small_graph(), 2, PassContext(2, disabled=frozenset({"nope"})))
    monkeypatch.setenv("DEEPC_PRINT_AFTER", "nope")
    with pytest.raises(UnknownPassError, match="unknown pass nope"):
        run_pipeline(small_graph(), 1)


def test_the_verifier_runs_after_every_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(graph: Graph, ctx: PassContext) -> Graph:
        return graph.replace(nodes=graph.nodes[1:])

    monkeypatch.setitem(PASSES, "broken", broken)
    monkeypatch.setitem(manager_module.PIPELINES, 1, ["fold", "broken"])
    with pytest.raises(VerifyError, match="after pass 'broken'"):
        run_pipeline(small_graph(), 1)
    assert run_pipeline(small_graph(), 1, PassContext(1, verify=False)) is not None


# -- the CLI ------------------------------------------------------------------------------------
def test_compile_prints_ir_after_a_pass_and_pass_times_to_stderr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run("compile", str(EXAMPLE), "-o", str(tmp_path / "m.tar"), "--json",
                         "--print-after", "simplify", "--print-pass-times",
                         "--disable-pass", "cse")
    assert code == 0, err
    assert json.loads(out)["kernels"] > 0  # stdout stays JSON
    assert "graph IR after simplify" in err and "graph tiny_cnn(" in err
    assert "batch_norm" not in err.split("graph IR after simplify")[1].split("return")[0]
    assert "pass (-O2)" in err and "simplify" in err and "total" in err


@pytest.mark.parametrize("option", ["--disable-pass", "--print-after"])
def test_unknown_pass_names_are_one_line_errors(tmp_path, option: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("compile", str(EXAMPLE), "-o", str(tmp_path / "m.tar"), option, "nope")
    assert_one_line_error(code, err, 2, "unknown pass nope", "known passes:", "simplify")
    code, _, err = run("inspect-ir", str(EXAMPLE), option, "nope")
    assert_one_line_error(code, err, 2, "unknown pass nope")


def test_inspect_ir_shows_the_graph_after_the_pipeline_when_o_is_given() -> None:
    code, out, _ = run("inspect-ir", str(EXAMPLE), "--json")
    assert code == 0 and "batch_norm" in json.loads(out)["summary"]["op_counts"]
    code, out, err = run("inspect-ir", str(EXAMPLE), "--json", "-O2")
    assert code == 0, err
    assert "batch_norm" not in json.loads(out)["summary"]["op_counts"]
    code, out, err = run("inspect-ir", str(EXAMPLE), "-O1", "--print-after", "fold",
                         "--print-pass-times", "--no-constants")
    assert code == 0, err
    assert "graph IR after fold" in out and "pass (-O1)" in out
    assert "batch_norm" in out  # -O1 does not simplify


def test_inspect_ir_notes_a_print_after_pass_outside_the_pipeline() -> None:
    code, out, err = run("inspect-ir", str(EXAMPLE), "-O1", "--print-after", "simplify")
    assert code == 0 and "simplify is not part of -O1" in err
    assert "graph IR after" not in out


def test_pass_options_apply_to_compiled_inspect_stages() -> None:
    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", "loop", "--print-after", "fold")
    assert code == 0, err
    assert "graph IR after fold" in out  # more in tests/cli/test_inspect_passes.py

"""`deepc inspect-ir` at the compiled stages runs the graph passes as `deepc compile` does:
with the pass options of the command line (--disable-pass, --print-after, --print-pass-times)."""

from __future__ import annotations

import json

from deepc.compiler.inspect import kernel_texts
from deepc.frontends import load
from deepc.passes import PassContext
from tests.test_cli import EXAMPLE, run


def kernel_count(*options: str) -> int:
    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", "fused", "--json", *options)
    assert code == 0, err
    return len(json.loads(out)) - 1  # less the "groups" overview


def test_disabled_fusion_leaves_more_kernels() -> None:
    fused = kernel_count()
    assert fused < len(load(EXAMPLE).nodes)
    assert kernel_count("--disable-pass", "fuse") > fused


def test_loop_stage_reports_pass_times_and_dumps_on_stderr_with_json() -> None:
    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", "loop", "--json",
                         "--print-pass-times", "--print-after", "fuse")
    assert code == 0, err
    assert json.loads(out)  # stdout stays JSON
    assert "graph IR after fuse" in err and "pass (-O2)" in err and "total" in err


def test_kernel_texts_run_the_passes_with_the_given_context() -> None:
    for stage in ("fused", "loop"):
        ctx = PassContext(2, disabled=frozenset({"fuse"}))
        texts = kernel_texts(load(EXAMPLE), "host", stage, pass_context=ctx)
        assert [name for name, _ in ctx.times] == [
            "fold_qdq", "fold", "cse", "simplify", "cse", "dce", "qdq_glue",
            "nchwc_layout", "kernel_layout", "rnn_blocks", "gemm_pad"]
        assert len(texts) > kernel_count()

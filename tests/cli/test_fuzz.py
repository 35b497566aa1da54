"""Fuzzing the CLI with mutated models: every input gets exit 0 and onnxruntime's numbers, or
exit 2 and one line — never a traceback, a hang, a crash or a half-written bundle (issue 23)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.cli.fuzz_support import (
    BASES,
    check_answer,
    mutated_models,
    random_graphs,
    time_limit,
)
from tests.test_cli import run

pytestmark = pytest.mark.fuzz  # a few tens of seconds at most; runs in `make test`
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def compile_and_check(what: str, data: bytes) -> int:
    """`deepc compile` on the model's bytes, then check_answer; returns the exit code."""
    with tempfile.TemporaryDirectory() as tmp:
        model, out = Path(tmp) / "m.onnx", Path(tmp) / "m.tar"
        model.write_bytes(data)
        with time_limit(60):
            code, _, err = run("compile", str(model), "-o", str(out))
            check_answer(what, code, err, model, out)
    return code


@FUZZ
@given(mutated_models())
def test_mutated_models_get_a_clear_answer(case: tuple[str, bytes]) -> None:
    compile_and_check(*case)


@settings(FUZZ, max_examples=40)
@given(random_graphs())
def test_random_graphs_match_onnxruntime_or_are_refused(case: tuple[str, bytes]) -> None:
    """Property: a random small graph of supported ops compiles and matches onnxruntime, or
    is refused cleanly (exit 2, one line)."""
    compile_and_check(*case)


def test_base_models_compile_and_match() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in BASES.items():
            model, out = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.tar"
            model.write_bytes(data)
            code, _, err = run("compile", str(model), "-o", str(out))
            assert code == 0, err
            check_answer(name, code, err, model, out)
            out.unlink()


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_real_processes_answer_truncated_and_cyclic_models(tmp_path: Path, cut: float) -> None:
    """A few runs as a user makes them: a separate process, its real stderr, a timeout."""
    import onnx

    data = BASES["mlp"]
    cyclic = onnx.load_from_string(data)
    cyclic.graph.node[0].input[0] = "y"
    for what, blob in (("truncated", data[:int(len(data) * cut)]),
                       ("cycle", cyclic.SerializeToString())):
        model, out = tmp_path / f"{what}.onnx", tmp_path / f"{what}.tar"
        model.write_bytes(blob)
        proc = subprocess.run([sys.executable, "-m", "deepc.cli", "compile", str(model), "-o",
                               str(out)], capture_output=True, text=True, timeout=120)
        # on a loaded machine a `deepc: ...` progress line may come first (runs over 2 s)
        lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("deepc: ")]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("error:") and not out.exists()

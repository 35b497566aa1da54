"""`deepc tune` on the command line: a JSON summary, a resumable log, one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from deepc.cli import main
from tests.tune.conftest import TINY


def test_tune_json_summary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "t.jsonl"
    result = CliRunner().invoke(main, ["tune", str(TINY), "--budget", "3s", "--log", str(log),
                                       "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    # a row per trial, and one per record that the whole-model check turned down
    check = summary["model_check"] or {"rows": 0}
    assert summary["trials"] + check["rows"] == len(log.read_text().splitlines())
    assert summary["speedup"] >= 1.0 and len(summary["tasks"]) >= 1


def test_bad_budget_and_opencl_target_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = str(tmp_path / "t.jsonl")
    bad = CliRunner().invoke(main, ["tune", str(TINY), "--budget", "soon", "--log", log])
    assert bad.exit_code == 2 and "90s, 10m or 1h" in bad.output
    gpu = CliRunner().invoke(main, ["tune", str(TINY), "-t", "opencl-gpu", "--log", log])
    assert gpu.exit_code != 0 and "cannot search yet" in gpu.output
    assert len(gpu.output.strip().splitlines()) == 1

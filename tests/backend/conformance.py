"""The onnx package's backend test runner over deepc's compiled path, with expectation lists.

Tests listed in a suite's expected-failures file are expected to fail (unittest's
expectedFailure, so one that starts passing is reported as a failure and must come off the
list: the count of passing tests only goes up). Tests in its crashes file take the process
down and are skipped. Regenerate both with `python -m tests.backend.update_expected_failures`
(DEEPC_NODE_SUITE_ALL=1 runs every test with no expectations).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx.backend.test

from deepc.backend import DeepcBackend

HERE = Path(__file__).parent


def listed(path: Path) -> list[str]:
    """Test names in a list file (one a line; `#` starts a comment)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def backend_cases(module: str, expected_failures: Path, crashes: Path) -> dict[str, type]:
    """The runner's test classes (by name) for `module`, with the lists applied."""
    backend_test = onnx.backend.test.BackendTest(DeepcBackend, module)
    backend_test.include(r"^test_.*_cpu$")
    for name in listed(crashes):
        backend_test.exclude(f"^{re.escape(name)}_cpu$")
    if not os.environ.get("DEEPC_NODE_SUITE_ALL"):
        for name in listed(expected_failures):
            backend_test.xfail(f"^{re.escape(name)}_cpu$")
    return backend_test.test_cases

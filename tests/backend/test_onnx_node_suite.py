"""The onnx package's node conformance suite through deepc's compiled path.

Tests listed in `onnx_node_expected_failures.txt` are expected to fail (unittest's
expectedFailure, so one that starts passing is reported as a failure and must come off the
list: the count of passing tests only goes up). Tests in `onnx_node_crashes.txt` take the
process down and are skipped. Regenerate both with
`python -m tests.backend.update_expected_failures` (DEEPC_NODE_SUITE_ALL=1 runs every test
with no expectations).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import onnx.backend.test
import pytest

from deepc.backend import DeepcBackend

EXPECTED_FAILURES = Path(__file__).with_name("onnx_node_expected_failures.txt")
CRASHES = Path(__file__).with_name("onnx_node_crashes.txt")


def listed(path: Path) -> list[str]:
    """Test names in a list file (one a line; `#` starts a comment)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


backend_test = onnx.backend.test.BackendTest(DeepcBackend, __name__)
backend_test.include(r"^test_.*_cpu$")
for _name in listed(CRASHES):
    backend_test.exclude(f"^{re.escape(_name)}_cpu$")
if not os.environ.get("DEEPC_NODE_SUITE_ALL"):
    for _name in listed(EXPECTED_FAILURES):
        backend_test.xfail(f"^{re.escape(_name)}_cpu$")

_cases = backend_test.test_cases
OnnxBackendNodeModelTest = _cases["OnnxBackendNodeModelTest"]
OnnxBackendNodeModelTest = pytest.mark.node_suite(OnnxBackendNodeModelTest)

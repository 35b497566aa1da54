"""The onnx package's node conformance suite through deepc's compiled path.

Tests listed in `onnx_node_expected_failures.txt` are expected to fail (unittest's
expectedFailure, so one that starts passing is reported as a failure and must come off the
list: the count of passing tests only goes up). Regenerate the list with
`python -m tests.backend.update_expected_failures`.
"""

from __future__ import annotations

import re
from pathlib import Path

import onnx.backend.test
import pytest

from deepc.backend import DeepcBackend

EXPECTED_FAILURES = Path(__file__).with_name("onnx_node_expected_failures.txt")


def expected_failures() -> list[str]:
    if not EXPECTED_FAILURES.exists():
        return []
    lines = EXPECTED_FAILURES.read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


backend_test = onnx.backend.test.BackendTest(DeepcBackend, __name__)
backend_test.include(r"^test_.*_cpu$")
for _name in expected_failures():
    backend_test.xfail(f"^{re.escape(_name)}_cpu$")

_cases = backend_test.test_cases
OnnxBackendNodeModelTest = _cases["OnnxBackendNodeModelTest"]
OnnxBackendNodeModelTest = pytest.mark.node_suite(OnnxBackendNodeModelTest)

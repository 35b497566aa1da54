"""The onnx package's node conformance suite through deepc's compiled path.

Expectations: `onnx_node_expected_failures.txt` and `onnx_node_crashes.txt` (see
tests/backend/conformance.py).
"""

from __future__ import annotations

import pytest

from tests.backend.conformance import HERE, backend_cases

_cases = backend_cases(__name__, HERE / "onnx_node_expected_failures.txt",
                       HERE / "onnx_node_crashes.txt")
OnnxBackendNodeModelTest = pytest.mark.node_suite(_cases["OnnxBackendNodeModelTest"])

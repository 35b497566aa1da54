"""The onnx package's model suites (simple, pytorch-converted, pytorch-operator and the light
model zoo, which the runner calls "real") through deepc's compiled path.

Expectations: `onnx_models_expected_failures.txt` and `onnx_models_crashes.txt` (see
tests/backend/conformance.py).
"""

from __future__ import annotations

import pytest

from tests.backend.conformance import HERE, backend_cases

_cases = backend_cases(__name__, HERE / "onnx_models_expected_failures.txt",
                       HERE / "onnx_models_crashes.txt")
OnnxBackendSimpleModelTest = pytest.mark.node_suite(_cases["OnnxBackendSimpleModelTest"])
OnnxBackendPyTorchConvertedModelTest = pytest.mark.node_suite(
    _cases["OnnxBackendPyTorchConvertedModelTest"])
OnnxBackendPyTorchOperatorModelTest = pytest.mark.node_suite(
    _cases["OnnxBackendPyTorchOperatorModelTest"])
OnnxBackendRealModelTest = pytest.mark.node_suite(_cases["OnnxBackendRealModelTest"])

"""Fixtures shared by the op tests: every case runs several ways through deepc."""

from __future__ import annotations

from functools import partial

import pytest

from tests.helpers import check_compiled, check_compute, check_op, run_compute, run_deepc


@pytest.fixture(params=[check_op, check_compute, check_compiled],
                ids=["reference", "compute", "compiled"])
def check(request):  # type: ignore[no-untyped-def]
    """Each case runs through the numpy reference, the compute definition evaluated with
    numpy, and the compute definition compiled by the LLVM backend."""
    return request.param


@pytest.fixture(params=[check_op, check_compiled], ids=["reference", "compiled"])
def check_loops(request):  # type: ignore[no-untyped-def]
    """For ops written as hand-made loop nests (extern stages), which only compile: the
    numpy evaluator of compute definitions cannot run them."""
    return request.param


@pytest.fixture(params=[None, False, True], ids=["reference", "compute", "compiled"])
def run(request):  # type: ignore[no-untyped-def]
    """run(model, feeds) -> deepc's outputs through the references, or the compute
    definitions evaluated with numpy or compiled: for cases not compared with onnxruntime."""
    return run_deepc if request.param is None else partial(run_compute, compiled=request.param)

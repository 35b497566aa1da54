"""Huge-page buffers for a bundle's params and workspace: aligned, the file's bytes exactly,
and the model's numbers unchanged."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from deepc.runtime.bundle import TensorSpec, write_bundle
from deepc.runtime.memory import ALIGN, HUGE_PAGE, huge_empty, read_huge
from deepc.runtime.model import Model
from deepc.target import Target
from tests.runtime.test_model import BIAS, SCALE, N, expected

HUGE = hasattr(mmap, "MADV_HUGEPAGE")


@pytest.mark.parametrize("nbytes", [100, HUGE_PAGE, 3 * HUGE_PAGE + 5])
def test_huge_empty(nbytes: int) -> None:
    a = huge_empty(nbytes)
    assert a.size == nbytes and a.dtype == np.uint8
    boundary = HUGE_PAGE if HUGE and nbytes >= HUGE_PAGE else ALIGN
    assert a.ctypes.data % boundary == 0
    a[:] = 7  # writable over its whole length
    assert int(a[-1]) == 7


def test_read_huge(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, HUGE_PAGE + 77, dtype=np.uint8)
    (tmp_path / "p.bin").write_bytes(data.tobytes())
    assert np.array_equal(read_huge(tmp_path / "p.bin", data.size), data)
    with pytest.raises(EOFError):
        read_huge(tmp_path / "p.bin", data.size + 1)


def test_large_params_run_from_huge_pages(fake_model_lib: Path, host: Target,
                                          tmp_path: Path) -> None:
    """Params past one huge page are read into huge-page memory; the fake model still finds
    scale at offset 0 and bias at 64 there."""
    pad = np.zeros(HUGE_PAGE // 4, np.float32)
    tar = write_bundle(
        tmp_path / "big.tar", library=fake_model_lib,
        params={"scale": np.array([SCALE]), "bias": np.array([BIAS]), "pad": pad},
        inputs=[TensorSpec("x", (4, 250), "float32")],
        outputs=[TensorSpec("y", (4, 250), "float32"), TensorSpec("total", (), "float64")],
        target=host, workspace_bytes=N * 4, name="fake")
    model = Model(tar)
    params = model._library._params
    assert params.size >= HUGE_PAGE and not isinstance(params, np.memmap)
    assert params.ctypes.data % (HUGE_PAGE if HUGE else ALIGN) == 0
    x = np.random.default_rng(1).standard_normal((4, 250)).astype(np.float32)
    out = model.run({"x": x})
    y, total = expected(x)
    np.testing.assert_allclose(out["y"], y, rtol=1e-6)
    assert abs(float(out["total"]) - total) < 1e-3

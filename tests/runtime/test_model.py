"""Model: a bundle with a hand-written model library, run from Python and from plain C."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepc
from deepc.errors import DeepcError, ShapeError
from deepc.runtime.bundle import TensorSpec, read_bundle, write_bundle
from deepc.runtime.model import Model
from deepc.target import Target, load_target
from tests.runtime.conftest import cc

N = 1000  # fake_model.c's X_SIZE
SCALE, BIAS = np.float32(1.5), np.float32(-0.25)


def bundle(path: Path, library: Path, target: Any, **more: Any) -> Path:
    """The fake model's bundle; `more` goes to write_bundle (extra manifest keys, files)."""
    # scale lands at offset 0 and bias at 64: where fake_model.c reads them
    return write_bundle(
        path, library=library, params={"scale": np.array([SCALE]), "bias": np.array([BIAS])},
        inputs=[TensorSpec("x", (4, 250), "float32")],
        outputs=[TensorSpec("y", (4, 250), "float32"), TensorSpec("total", (), "float64")],
        target=target, workspace_bytes=N * 4, name="fake", **more)


@pytest.fixture(scope="module")
def model_tar(fake_model_lib: Path, host: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle(tmp_path_factory.mktemp("bundle") / "fake.tar", fake_model_lib, host)


def expected(x: np.ndarray) -> tuple[np.ndarray, float]:
    y = x.astype(np.float32) * SCALE + BIAS
    return y, float(y.astype(np.float64).sum())


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_run_matches_numpy(model_tar: Path, threads: int) -> None:
    model = deepc.load(model_tar)
    model.set_num_threads(threads)
    assert model.num_threads == threads
    x = np.random.default_rng(threads).standard_normal((4, 250)).astype(np.float32)
    out = model.run({"x": x})
    y, total = expected(x)
    assert list(out) == ["y", "total"]
    np.testing.assert_array_equal(out["y"], y)
    assert out["total"].shape == () and out["total"].dtype == np.float64
    assert out["total"] == pytest.approx(total, rel=1e-12)
    again = model.run({"x": x})  # the workspace is reused; outputs are fresh arrays
    assert again["y"] is not out["y"]
    np.testing.assert_array_equal(again["y"], y)


def test_inputs_are_converted_only_when_safe(model_tar: Path) -> None:
    model = Model(model_tar)
    x = np.random.default_rng(0).standard_normal((250, 4)).astype(np.float16)
    for feed in (x.T, x.T.astype(">f4"), x.T.astype(np.float32)[:, ::1]):  # strided, big-endian
        np.testing.assert_array_equal(model.run({"x": feed})["y"], expected(x.T)[0])
    with pytest.raises(ShapeError, match=r"input 'x' is float64, the model expects float32.*"
                                         r"astype\(np.float32\)"):
        model.run({"x": x.T.astype(np.float64)})
    with pytest.raises(ShapeError, match="input 'x' has shape 250x4, the model expects"
                                         r" x: float32\[4x250\]"):
        model.run({"x": x})


@pytest.mark.parametrize(("feeds", "message"), [
    ({}, "missing input.s. x — the model takes x: float32.4x250."),
    ({"x": np.zeros((4, 250), np.float32), "z": 1}, "unknown input.s. z"),
    ([np.zeros((4, 250), np.float32)], "takes a dict"),
])
def test_bad_feeds(model_tar: Path, feeds: Any, message: str) -> None:
    with pytest.raises(DeepcError, match=message):
        Model(model_tar).run(feeds)


def test_failing_run_raises(model_tar: Path) -> None:
    x = np.zeros((4, 250), np.float32)
    x[0, 0] = -12345  # fake_model.c returns 5 for this
    with pytest.raises(DeepcError, match="deepc_run returned 5"):
        Model(model_tar).run({"x": x})


def test_repr_and_metadata(model_tar: Path) -> None:
    model = Model(read_bundle(model_tar))
    assert model.inputs == (TensorSpec("x", (4, 250), "float32"),)
    assert model.manifest["name"] == "fake"
    assert "x: float32[4x250] -> y: float32[4x250], total: float64[]" in repr(model)


def _retarget(target: Target, **isa: Any) -> dict[str, Any]:
    data = target.to_dict()
    data["isa"] = {**data["isa"], **isa}
    return data


def _no_emulator(target: Target) -> dict[str, Any]:
    data = target.to_dict()
    del data["toolchain"]["emulator"]
    return data


@pytest.mark.parametrize(("target", "message"), [
    (lambda host: _no_emulator(load_target("rpi3")),
     "compiled for armv7-unknown-linux-gnueabihf and cannot be loaded on this machine"),
    (lambda host: load_target("rpi3"), "cannot be loaded on this machine .* carries no runner"),
    (lambda host: _retarget(host, features=["+deepc-imaginary-ext"]),
     r"uses CPU features this machine lacks \(\+deepc-imaginary-ext\)"),
    (lambda host: load_target("apple-m2"), "bundle for metal devices, which this deepc"
                                           " cannot run"),
], ids=["foreign-arch", "foreign-arch-no-runner", "missing-feature", "other-device"])
def test_bundles_for_other_machines_are_refused(fake_model_lib: Path, host: Target,
                                                tmp_path: Path, target: Any,
                                                message: str) -> None:
    path = bundle(tmp_path / "other.tar", fake_model_lib, target(host))
    with pytest.raises(DeepcError, match=message):
        deepc.load(path)


C_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "deepc_model.h"

int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    void *params = aligned_alloc(DEEPC_ALIGN, DEEPC_PARAMS_BYTES);
    void *workspace = aligned_alloc(DEEPC_ALIGN, DEEPC_WORKSPACE_BYTES);
    if (!f || fread(params, 1, DEEPC_PARAMS_BYTES, f) != DEEPC_PARAMS_BYTES) return 2;
    static DEEPC_INPUT0_CTYPE x[DEEPC_INPUT0_SIZE];
    static DEEPC_OUTPUT0_CTYPE y[DEEPC_OUTPUT0_SIZE];
    DEEPC_OUTPUT1_CTYPE total;
    for (int i = 0; i < DEEPC_INPUT0_SIZE; i++) x[i] = (float)i / 8;
    void *inputs[DEEPC_NUM_INPUTS] = {x};
    void *outputs[DEEPC_NUM_OUTPUTS] = {y, &total};
    deepc_set_num_threads(argc > 2 ? atoi(argv[2]) : 0);
    int rc = deepc_run(inputs, outputs, params, workspace);
    printf("%d %.9g %.9g %.17g\n", rc, y[0], y[DEEPC_OUTPUT0_SIZE - 1], total);
    free(params);
    free(workspace);
    return rc;
}
"""


def test_bundle_runs_from_c_alone(model_tar: Path, tmp_path: Path) -> None:
    b = read_bundle(model_tar)
    (tmp_path / "main.c").write_text(C_MAIN)
    cc("-std=c11", "-Wall", "-Werror", f"-I{b.header_path.parent}", tmp_path / "main.c",
       b.library, f"-Wl,-rpath,{b.library.parent}", "-o", tmp_path / "main")
    x = (np.arange(N, dtype=np.float32) / 8).reshape(4, 250)
    y, total = expected(x)
    for threads in ("1", "2"):
        done = subprocess.run([str(tmp_path / "main"), str(b.params_path), threads],
                              capture_output=True, text=True, check=True)
        rc, first, last, got_total = done.stdout.split()
        assert rc == "0" and float(first) == y.flat[0] and float(last) == y.flat[-1]
        assert float(got_total) == pytest.approx(total, rel=1e-12)

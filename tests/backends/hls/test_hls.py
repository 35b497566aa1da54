"""The hls backend: rendered pragmas, C simulation of the shared CNNs against onnxruntime,
the fit check, and the host program's cross build (tests skip with a reason without g++,
the ap_types headers or the aarch64 cross compiler)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.errors import DeepcError, FitError, ToolchainError
from deepc.target import load_target
from tests.conftest import shared_model

TARGET = "fpga-zcu104"
ROOT = Path(__file__).resolve().parents[3]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="module")
def ap_types() -> Path:
    from deepc.runtime.ap_types import ap_types_dir

    _need("g++")
    try:
        return ap_types_dir()
    except ToolchainError as e:
        pytest.skip(f"no ap_types headers: {e}")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model compiled and packaged once (the packager cross-compiles the host program
    with the target's first installed compiler: zig or the aarch64 gcc)."""
    from deepc.backends.compilers import choose

    try:
        choose(load_target(TARGET))
    except ToolchainError as e:
        pytest.skip(str(e))
    return {}


def _bundle(bundles: dict[str, Path], name: str, tmp: Path) -> Path:
    if name not in bundles:
        bundles[name] = deepc.compile(shared_model(name), TARGET).save(tmp / f"{name}.tar")
    return bundles[name]


@pytest.mark.models
def test_pragmas_from_the_schedule() -> None:
    source = deepc.compile(shared_model("squeezenet1_1"), TARGET).source
    for pragma in ("#pragma HLS PIPELINE II=4", "#pragma HLS UNROLL factor=8",
                   "#pragma HLS INTERFACE m_axi port=ddr", "#pragma HLS INTERFACE s_axilite",
                   "#pragma HLS ARRAY_PARTITION variable=conv_acc complete",
                   "#pragma HLS BIND_STORAGE variable=features_3_squeeze_weight_bram type=ram_2p",
                   "variable=features_3_squeeze_weight_bram cyclic factor=10"):
        assert pragma in source


@pytest.mark.models
@pytest.mark.toolchain
@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v2", "resnet18"])
def test_csim_matches_onnxruntime(name: str, ap_types: Path, bundles: dict[str, Path],
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = deepc.load(_bundle(bundles, name, tmp_path_factory.mktemp("hls")))
    assert model.emulated and "C simulation" in (model.run_note or "")
    feeds = model.random_inputs(seed=1)
    (got,) = model.run(feeds).values()
    (want,) = ort.InferenceSession(str(shared_model(name))).run(None, feeds)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.models
@pytest.mark.toolchain
def test_bundle_carries_hls_sources_and_an_aarch64_host(
        bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    from deepc.runtime.bundle import read_bundle

    contents = read_bundle(_bundle(bundles, "squeezenet1_1", tmp_path_factory.mktemp("hls")))
    for member in ("hls/kernels.cpp", "hls/deepc_top.h", "hls/tb.cpp", "hls/run_hls.tcl",
                   "host/host.c"):
        assert contents.file(member).is_file()
    elf = contents.file("bin/host").read_bytes()
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # AArch64
    estimate = contents.manifest["estimate"]
    assert estimate["estimate"] and estimate["latency_ms"] > 0
    assert estimate["totals"]["dsp"] <= estimate["budgets"]["dsp"]


@pytest.mark.models
def test_a_model_too_big_for_the_part_is_refused(tmp_path: Path) -> None:
    small = tmp_path / "tiny-fpga.toml"
    text = (ROOT / "targets" / f"{TARGET}.toml").read_text()
    small.write_text(text.replace('name = "fpga-zcu104"', 'name = "tiny-fpga"')
                     .replace("dsp = 1728", "dsp = 16"))
    with pytest.raises(FitError) as err:
        deepc.compile(shared_model("squeezenet1_1"), str(small))
    message = str(err.value)
    assert "\n" not in message and "DSP48" in message and "largest consumer is k0" in message
    done = subprocess.run([sys.executable, "-m", "deepc.cli", "compile",
                           str(shared_model("squeezenet1_1")), "--target", str(small), "-o",
                           str(tmp_path / "x.tar")], capture_output=True, text=True)
    assert done.returncode == 2 and "largest consumer" in done.stderr


@pytest.mark.models
def test_inspect_hls_stage() -> None:
    from deepc.compiler.inspect import kernel_texts
    from deepc.frontends import load

    texts = kernel_texts(load(shared_model("squeezenet1_1")), TARGET, "hls")
    assert "estimate at 200 MHz" in texts["model"] and "DSP48 slices" in texts["model"]
    assert "conv_rc_o II=4 x8" in texts["k002_conv_relu"]
    with pytest.raises(DeepcError):
        kernel_texts(load(shared_model("squeezenet1_1")), "host", "hls")


@pytest.mark.models
@pytest.mark.toolchain
def test_cli_run_says_it_simulates(ap_types: Path, bundles: dict[str, Path],
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    bundle = _bundle(bundles, "squeezenet1_1", tmp_path_factory.mktemp("hls"))
    done = subprocess.run([sys.executable, "-m", "deepc.cli", "run", str(bundle)],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "C simulation" in done.stderr
    times = deepc.load(bundle).time_runs(deepc.load(bundle).random_inputs(), runs=2)
    assert times.estimated and times.seconds[0] > 0

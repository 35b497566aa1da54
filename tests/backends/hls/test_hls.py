"""The hls backend: rendered pragmas, C simulation of the shared CNNs against onnxruntime in
float32 and fixed16, the fit check, the estimate in bench, and the host program's cross build
(tests skip with a reason without g++, the ap_types headers or the aarch64 cross compiler)."""

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
# fixed16 outputs are within this fraction of the reference output's largest magnitude. Every
# tensor is rounded to 16 bits with at most 2 bits of headroom over its calibrated range (a
# sign and a guard bit), a step of at most 2^-13 of that range; the roundings are to nearest,
# so across resnet18's layers they add up like a random walk: measured 1.7e-4 (squeezenet1_1),
# 2.8e-4 (mobilenet_v2), 2.9e-4 (resnet18) on seeds 0-2 — the bound leaves 7x room.
FIXED16_TOLERANCE = 2e-3


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


def _bundle(bundles: dict[str, Path], name: str, tmp: Path, precision: str = "float32") -> Path:
    key = f"{name}-{precision}"
    if key not in bundles:
        bundles[key] = deepc.compile(shared_model(name), TARGET, precision=precision).save(
            tmp / f"{key}.tar")
    return bundles[key]


@pytest.mark.models
def test_pragmas_from_the_schedule() -> None:
    source = deepc.compile(shared_model("squeezenet1_1"), TARGET).source
    for pragma in ("#pragma HLS PIPELINE II=1", "#pragma HLS UNROLL factor=8",
                   "#pragma HLS ARRAY_PARTITION variable=conv_acc_lanes complete",
                   "#pragma HLS INTERFACE m_axi port=ddr", "#pragma HLS INTERFACE s_axilite",
                   "#pragma HLS ARRAY_PARTITION variable=conv_acc complete",
                   "#pragma HLS BIND_STORAGE variable=features_3_squeeze_weight_bram type=ram_2p",
                   "variable=features_3_squeeze_weight_bram cyclic factor=10"):
        assert pragma in source


@pytest.mark.models
@pytest.mark.toolchain
@pytest.mark.parametrize("precision", ["float32", "fixed16"])
@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v2", "resnet18"])
def test_csim_matches_onnxruntime(name: str, precision: str, ap_types: Path,
                                  bundles: dict[str, Path],
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = deepc.load(_bundle(bundles, name, tmp_path_factory.mktemp("hls"), precision))
    assert model.emulated and "C simulation" in (model.run_note or "")
    feeds = model.random_inputs(seed=1)
    (got,) = model.run(feeds).values()
    (want,) = ort.InferenceSession(str(shared_model(name))).run(None, feeds)
    if precision == "float32":
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    else:
        np.testing.assert_allclose(got, want, rtol=0,
                                   atol=FIXED16_TOLERANCE * float(np.abs(want).max()))


@pytest.mark.models
def test_fixed16_formats_from_the_calibration() -> None:
    compiled = deepc.compile(shared_model("squeezenet1_1"), TARGET, precision="fixed16")
    formats = compiled.module.settings["formats"]["k002_conv_relu"]
    source = compiled.source
    # the squeeze layer's weights are below 1 (more fraction bits); its ReLU output is not
    assert formats["features_3_squeeze_weight"] < formats["relu"]
    assert f"deepc_fx<{formats['features_3_squeeze_weight']}> features_3_squeeze_weight_bram" \
        in source
    k002 = source[source.index("void k002_conv_relu"):source.index("void k003_conv_relu")]
    assert f"] = deepc_fx<{formats['relu']}>(deepc_maxf(" in k002  # ReLU, rounded to its format
    assert "typedef ap_fixed<48, " in source and "deepc_acc_t conv_acc_tile[3025];" in k002
    assert compiled.module.report["estimate"]["unroll"] > deepc.compile(
        shared_model("squeezenet1_1"), TARGET).module.report["estimate"]["unroll"]


def test_integer_bits_hold_the_calibrated_range() -> None:
    from deepc.backends.hls.fixed import WIDTH, integer_bits

    for largest in (0.01, 0.3, 0.5, 1.0, 5.3, 8.0, 100.0):
        n = integer_bits(largest)
        assert largest < 2.0 ** (n - 1) / 2  # a guard bit above the sign and the range
        assert 2.0 ** (n - 1) / 4 <= largest  # and no more
        assert 2.0 ** (n - WIDTH) <= largest * 2.0 ** -13  # the step, relative to the range


def test_fixed16_is_refused_where_the_backend_has_no_fixed_point(tmp_path: Path) -> None:
    model = ROOT / "examples" / "tiny_cnn.onnx"
    with pytest.raises(DeepcError, match="fixed16"):
        deepc.compile(model, "host", precision="fixed16")
    done = subprocess.run([sys.executable, "-m", "deepc.cli", "compile", str(model),
                           "--precision", "fixed16", "-o", str(tmp_path / "x.tar")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "computes in float32, not fixed16" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.tar").exists()


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
    # the squeeze conv's 64 input channels are summed for 5 outputs side by side, one pipeline
    # over channels, rows and output groups
    assert "conv_rc_conv_rk0_conv_rk1_conv_i2_conv_i3_o II=1 x38720" in texts["k002_conv_relu"]
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


@pytest.mark.models
@pytest.mark.toolchain
def test_cli_bench_reports_the_estimate(ap_types: Path) -> None:
    pytest.importorskip("onnxruntime")
    _need(load_target(TARGET).toolchain.cc)
    done = subprocess.run([sys.executable, "-m", "deepc.cli", "bench",
                           str(shared_model("squeezenet1_1")), "--target", TARGET, "--runs", "1",
                           "--warmup", "0"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "estimated latency" in done.stdout and "ESTIMATE" in done.stdout
    assert "200 MHz" in done.stdout and "yes" in done.stdout  # its C simulation matched


@pytest.mark.toolchain
@pytest.mark.parametrize("op_type, attrs", [
    ("Sigmoid", {}),  # a math call: computed in float from the fixed value, rounded back
    ("MaxPool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),  # -inf padding: a Select
])
def test_fixed16_calls_and_selects_c_simulate(op_type: str, attrs: dict, ap_types: Path,
                                              tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnx

    from tests.helpers import node_model, run_ort

    _need(load_target(TARGET).toolchain.cc)
    # drawn like the calibration's inputs (standard normal, another seed): values past twice
    # the calibrated largest magnitude saturate (3x these inputs clip MaxPool's 8.08 to 8.0)
    x = np.random.default_rng(5).standard_normal((1, 4, 8, 8)).astype(np.float32)
    path = tmp_path / "op.onnx"
    onnx.save(node_model(op_type, {"x": x}, **attrs), str(path))
    model = deepc.load(deepc.compile(path, TARGET, precision="fixed16").save(tmp_path / "m.tar"))
    (got,) = model.run({"x": x}).values()
    (want,) = run_ort(onnx.load(str(path)), {"x": x})
    np.testing.assert_allclose(got, want, rtol=0,
                               atol=FIXED16_TOLERANCE * float(np.abs(want).max()))

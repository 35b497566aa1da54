import numpy as np
import pytest

rng = np.random.default_rng(0)
REAL = rng.standard_normal((2, 8, 3, 1)).astype(np.float32)
CPLX = rng.standard_normal((2, 8, 3, 2)).astype(np.float32)
TOL = {"rtol": 1e-4, "atol": 1e-5}
# STFT frames sum ten float32 products of magnitude ~3: a bin that should be 0 (a DC bin's
# imaginary part) comes out at up to ~1e-5 in float32, beside onnxruntime's ~1e-7
STFT_TOL = {"rtol": 1e-4, "atol": 5e-5}


@pytest.mark.parametrize(("x", "attrs"), [
    (REAL, {}), (CPLX, {}), (CPLX, {"inverse": 1}), (REAL, {"onesided": 1}),
    (CPLX, {"axis": 2}),
])
def test_dft(check, x, attrs):
    check("DFT", {"x": x}, opset=17, **attrs, **TOL)


@pytest.mark.parametrize("length", [5, 12])
def test_dft_length_truncates_or_pads(check, length):
    check("DFT", {"x": CPLX, "n": np.array(length, np.int64)}, opset=17,
          initializers=["n"], **TOL)


def test_irfft_opset20(check):
    half = rng.standard_normal((2, 5, 3, 2)).astype(np.float32)
    half[:, 0, :, 1] = 0  # a real signal's spectrum: DC and Nyquist are real
    half[:, -1, :, 1] = 0
    check("DFT", {"x": half, "n": np.array(8, np.int64), "axis": np.array(1, np.int64)},
          opset=20, initializers=["n", "axis"], inverse=1, onesided=1, **TOL)


@pytest.mark.parametrize("windowed", [False, True])
def test_stft(check, windowed):
    # its own seed: the module's generator is drawn in test order, which xdist varies
    signal = np.random.default_rng(7).standard_normal((2, 40, 1)).astype(np.float32)
    inputs = {"s": signal, "step": np.array(6, np.int64)}
    if windowed:
        inputs["w"] = np.hanning(10).astype(np.float32)
    else:
        inputs.update({"w": None, "len": np.array(10, np.int64)})
    check("STFT", inputs, opset=17, initializers=[k for k in ("step", "w", "len")
                                                  if inputs.get(k) is not None], **STFT_TOL)

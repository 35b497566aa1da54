"""The int8 word ops (pack_windows, pack_rows, dot4_matmul): references against plain numpy
int64 arithmetic, and compiled by the LLVM backend (vpdpbusd where the host has it)."""

from __future__ import annotations

import numpy as np
import pytest

from deepc.compiler.jit_graph import run_graph_jit
from deepc.frontends.builder import GraphBuilder
from deepc.ir.types import TensorType
from deepc.ops.interpreter import run_graph
from deepc.ops.qdot import narrow_pairs, pairs_fit, widen_pairs
from deepc.target import load_target

rng = np.random.default_rng(11)
HOST_DOTS = load_target("host").dot_intrinsics
# the host intrinsic each kind's instruction needs: sdot's is ARM's, so on x86 the JIT must
# not pick it
NEEDS = {"": None, "sdot": "sdot", "vnni": "avx512_vnni", "maddubs": "avx2_madd",
         "maddwd": "avx2_madd", "wd": "avx2_madd"}
DOTS = list(NEEDS)


def _skip_unless_runs(run, dot: str) -> None:
    if run is run_graph_jit and NEEDS[dot] is not None and NEEDS[dot] not in HOST_DOTS:
        pytest.skip(f"the host cannot run {dot} instructions")


def _signed(dot: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random signed weight bytes with the extremes in; for maddubs ones whose adjacent
    pairs sum to at most 128 in magnitude (what the pass checks before choosing it)."""
    lo, hi = (-64, 64) if dot == "maddubs" else (-128, 127)
    w = rng.integers(lo, hi + 1, shape).astype(np.int8)
    w.reshape(-1)[:4] = (lo, lo, hi, hi)
    return w


def test_pairs_fit():
    """The bound is on vpmaddubsw's pairs: bytes 0, 1 and 2, 3 of each word, not 1, 2."""
    def words(*b: int) -> np.ndarray:
        return np.array(b, np.int8).view("<i4")

    assert pairs_fit(words(-128, 0, 64, 64)) and pairs_fit(words(127, 1, -1, 127))
    assert not pairs_fit(words(-128, 1, 0, 0)) and not pairs_fit(words(0, 0, 64, -65))
    assert pairs_fit(words(0, 127, 127, 0))  # 1 and 2 belong to different pairs


def test_widen_pairs_round_trips():
    """wd's operands: word k's bytes 0, 2 (sign-extended int16 halves) at 2k, 1, 3 at 2k + 1."""
    words = np.array([[-128, 127, -1, 5], [1, -2, 3, -4]], np.int8).view("<i4")  # [2, 1]
    pairs = widen_pairs(words, 0)
    halves = pairs.view("<i2").reshape(4, 2)
    np.testing.assert_array_equal(halves, [[-128, -1], [127, 5], [1, 3], [-2, -4]])
    np.testing.assert_array_equal(narrow_pairs(pairs, 0), words)


def _graph(op: str, inputs: dict[str, np.ndarray], attrs: dict, consts: dict | None = None):
    b = GraphBuilder(op)
    names = [b.add_input(k, TensorType.of(v)) for k, v in inputs.items()]
    names += [b.add_constant(v, k) for k, v in (consts or {}).items()]
    b.outputs = [b.emit(op, names, attrs, fold=False)[0]]
    return b.build()


def _im2col(x: np.ndarray, k: int, stride: int, pad: int, pad_value: int) -> np.ndarray:
    """[(c, kh, kw), P] of x's unsigned bytes, by loops."""
    u = x.astype(np.int64) + (128 if x.dtype == np.int8 else 0)
    _, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.full((c, k, k, oh, ow), pad_value, np.int64)
    for i in range(oh):
        for j in range(ow):
            for a in range(k):
                for b in range(k):
                    y, z = i * stride + a - pad, j * stride + b - pad
                    if 0 <= y < h and 0 <= z < w:
                        out[:, a, b, i, j] = u[0, :, y, z]
    return out.reshape(c * k * k, oh * ow)


def _unwords(words: np.ndarray, axis: int) -> np.ndarray:
    """Words along `axis` back to their unsigned bytes along it."""
    moved = np.ascontiguousarray(np.moveaxis(words.astype(np.int32), axis, -1))
    return np.moveaxis(moved.view(np.uint8).astype(np.int64), -1, axis)


@pytest.mark.parametrize("pixel_major", [0, 1])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("run", [run_graph, run_graph_jit], ids=["reference", "compiled"])
def test_pack_windows(run, dtype, pixel_major):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, (1, 5, 7, 6)).astype(dtype)  # 45 entries: padded
    attrs = {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1),
             "dilations": (1, 1), "pad_value": 77, "pixel_major": pixel_major}
    graph = _graph("pack_windows", {"x": x}, attrs)
    got = run(graph, {"x": x})[graph.outputs[0]]
    bytes_ = _unwords(got, 1 if pixel_major else 0)
    if pixel_major:
        bytes_ = bytes_.T
    want = _im2col(x, 3, 2, 1, 77)
    np.testing.assert_array_equal(bytes_[:45], want)
    assert not bytes_[45:].any()  # the last word's unused bytes are zero


@pytest.mark.parametrize("dot", DOTS)
@pytest.mark.parametrize("unsigned", [0, 1])
@pytest.mark.parametrize("run", [run_graph, run_graph_jit], ids=["reference", "compiled"])
def test_dot4_matmul(run, unsigned, dot):
    _skip_unless_runs(run, dot)
    m, k, n = 5, 9, 37  # 37 columns: full vectors and a tail
    u8 = rng.integers(0, 256, (m, 4 * k) if not unsigned else (4 * k, n)).astype(np.uint8)
    s8 = _signed(dot, (4 * k, n) if not unsigned else (m, 4 * k))
    words = {"a": u8 if not unsigned else s8, "b": s8 if not unsigned else u8}
    packed = {"a": np.ascontiguousarray(words["a"]).view("<i4"),
              "b": np.ascontiguousarray(words["b"].T).view("<i4").T.copy()}
    if dot == "wd":  # the signed operand's words as their int16 pairs
        side = "a" if unsigned else "b"
        packed[side] = widen_pairs(packed[side], 1 if unsigned else 0)
    graph = _graph("dot4_matmul", packed, {"dot": dot, "unsigned": unsigned})
    got = run(graph, packed)[graph.outputs[0]]
    want = words["a"].astype(np.int64) @ words["b"].astype(np.int64)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("run", [run_graph, run_graph_jit], ids=["reference", "compiled"])
def test_pack_rows(run):
    x = rng.integers(-128, 128, (3, 10)).astype(np.int8)
    graph = _graph("pack_rows", {"x": x}, {})
    got = _unwords(run(graph, {"x": x})[graph.outputs[0]], 1)
    np.testing.assert_array_equal(got[:, :10], x.astype(np.int64) + 128)
    assert not got[:, 10:].any()


@pytest.mark.parametrize("dot", DOTS)
@pytest.mark.parametrize(("strides", "dilations"), [((1, 1), (1, 1)), ((2, 1), (1, 2))])
@pytest.mark.parametrize("run", [run_graph, run_graph_jit], ids=["reference", "compiled"])
def test_dot4_conv(run, strides, dilations, dot):
    """Against loops over int64 bytes: unsigned image words times signed weight words."""
    _skip_unless_runs(run, dot)
    image = rng.integers(0, 256, (9, 11, 3, 4)).astype(np.uint8)  # [H, W, words, bytes]
    weights = _signed(dot, (3, 3, 3, 32, 4))  # [.., words, M, bytes]
    x = np.ascontiguousarray(image).view("<i4")[..., 0]
    w = np.ascontiguousarray(weights).view("<i4")[..., 0]
    if dot == "wd":
        w = widen_pairs(w, 2)
    graph = _graph("dot4_conv", {"x": x}, {"strides": strides, "dilations": dilations,
                                          "dot": dot}, {"w": w})
    got = run(graph, {"x": x})[graph.outputs[0]]
    (sh, sw), (dh, dw) = strides, dilations
    want = np.zeros((-(-(9 - 2 * dh) // sh), -(-(11 - 2 * dw) // sw), 32), np.int64)
    for i in range(want.shape[0]):
        for j in range(want.shape[1]):
            for a in range(3):
                for b in range(3):
                    u = image[i * sh + a * dh, j * sw + b * dw].astype(np.int64)  # [words, 4]
                    want[i, j] += np.einsum("ct,cmt->m", u, weights[a, b].astype(np.int64))
    np.testing.assert_array_equal(got, want)

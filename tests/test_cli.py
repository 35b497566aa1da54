"""The `deepc` command: output, one-line errors and exit codes (never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from deepc import __version__
from deepc.cli import main
from tests.conftest import ROOT, shared_model

EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(" ".join(lines)) > 0 and "Traceback" not in err
    assert err.strip().startswith("error:")
    for needle in needles:
        assert needle in err, err


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and __version__ in out


def test_targets_lists_every_file() -> None:
    code, out, _ = run("targets", "--json")
    assert code == 0
    names = json.loads(out)
    for name in ("host", "x86_64", "rpi3", "rpi4", "aarch64", "cuda-sm90", "wasm32-simd",
                 "fpga-zcu104", "apple-m2", "opencl-cpu"):
        assert name in names


def test_inspect_ir_example() -> None:
    code, out, _ = run("inspect-ir", str(EXAMPLE))
    assert code == 0
    assert "conv" in out and "graph tiny_cnn" in out and "GFLOPs" in out


def test_inspect_ir_json() -> None:
    code, out, _ = run("inspect-ir", str(EXAMPLE), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["summary"]["op_counts"]["conv"] == 5
    assert data["summary"]["flops"] > 0


@pytest.mark.models
def test_inspect_ir_resnet18() -> None:
    code, out, _ = run("inspect-ir", str(shared_model("resnet18")), "--no-constants")
    assert code == 0 and "conv" in out


@pytest.fixture
def broken_files(tmp_path: Path) -> dict[str, Path]:
    data = EXAMPLE.read_bytes()
    files = {
        "truncated": tmp_path / "truncated.onnx",
        "empty": tmp_path / "empty.onnx",
        "text": tmp_path / "text.onnx",
        "missing": tmp_path / "missing.onnx",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an onnx model\n" * 10)
    return files


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "missing"])
def test_bad_model_files_fail_in_one_line(broken_files: dict[str, Path], kind: str) -> None:
    code, _, err = run("inspect-ir", str(broken_files[kind]))
    assert_one_line_error(code, err, 2, broken_files[kind].name)


@pytest.mark.parametrize("cut", [10, 100, 1000, 5000, 20000])
def test_truncated_at_many_points(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.onnx"
    path.write_bytes(EXAMPLE.read_bytes()[:cut])
    code, _, err = run("inspect-ir", str(path))
    assert_one_line_error(code, err, 2)


def test_two_unknown_ops_named_in_one_message(tmp_path: Path) -> None:
    nodes = [helper.make_node("FooOp", ["x"], ["a"], name="foo1"),
             helper.make_node("BarOp", ["a"], ["b"], name="bar1"),
             helper.make_node("Relu", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "unknown.onnx"
    onnx.save(helper.make_model(graph), path)
    code, _, err = run("inspect-ir", str(path))
    assert_one_line_error(code, err, 2, "FooOp", "BarOp", "foo1", "bar1")


def test_bad_input_shape_spec() -> None:
    code, _, err = run("inspect-ir", str(EXAMPLE), "--input-shape", "input=1x3")
    assert_one_line_error(code, err, 2, "--input-shape")


def test_input_shape_names_unknown_input() -> None:
    code, _, err = run("inspect-ir", str(EXAMPLE), "--input-shape", "nope:1x3x8x8")
    assert_one_line_error(code, err, 2, "nope")


def test_bad_target_name() -> None:
    code, _, err = run("inspect-ir", str(EXAMPLE), "--stage", "loop", "--target", "nosuch")
    assert_one_line_error(code, err, 2, "nosuch")

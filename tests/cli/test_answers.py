"""Issue 23's items, as a user meets them: exit codes, paths checked first, notes that say
where things went, kernel prefixes, and tables that neither cut names nor hide directions."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console

from deepc.errors import EXIT_CODES
from tests.test_cli import EXAMPLE, assert_one_line_error, run


def _save(tmp: Path, name: str, nodes: list, inputs: list, outputs: list,
          inits: tuple = ()) -> Path:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    path = tmp / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.fixture(scope="module")
def embed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("embed")
    table = numpy_helper.from_array(np.arange(40, dtype=np.float32).reshape(10, 4), "E")
    model = _save(tmp, "embed", [helper.make_node("Gather", ["E", "ids"], ["y"])],
                  [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])], (table,))
    code, _, err = run("compile", str(model), "-o", str(tmp / "embed.tar"))
    assert code == 0, err
    return tmp / "embed.tar"


@pytest.mark.parametrize("where", ["/proc/x.tar", "/proc/no/such/dir/x.tar"])
def test_unwritable_output_is_refused_before_compiling(where: str) -> None:
    code, out, err = run("compile", str(EXAMPLE), "-o", where)
    assert_one_line_error(code, err, 2, where, "cannot create a file")
    assert out == ""  # nothing was compiled


def test_output_that_is_a_directory(tmp_path: Path) -> None:
    code, _, err = run("compile", str(EXAMPLE), "-o", str(tmp_path))
    assert_one_line_error(code, err, 2, "is a directory")


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_bundle_honours_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        code, _, err = run("compile", str(EXAMPLE), "-o", str(tmp_path / "m.tar"))
    finally:
        os.umask(old)
    assert code == 0, err
    assert (tmp_path / "m.tar").stat().st_mode & 0o777 == 0o666 & ~umask


def test_run_without_output_dir_says_outputs_were_not_saved(embed: Path, tmp_path: Path) -> None:
    code, out, err = run("run", str(embed))
    assert code == 0, err
    assert "first values" in out and "1x3x4" in out and "not saved" in err
    code, out, err = run("run", str(embed), "-d", str(tmp_path / "o"))
    assert code == 0 and "wrote 1 output file(s)" in err and (tmp_path / "o" / "y.npy").exists()


def test_out_of_range_ids_are_refused_like_onnxruntime(embed: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "ids.npy", np.array([[1, 2, 10]], np.int64))
    code, _, err = run("run", str(embed), "-i", f"ids={tmp_path / 'ids.npy'}")
    assert_one_line_error(code, err, 2, "index 10", "[-10, 9]")
    np.save(tmp_path / "ok.npy", np.array([[0, -10, 9]], np.int64))  # negative ids wrap
    code, _, err = run("run", str(embed), "-i", f"ids={tmp_path / 'ok.npy'}", "--json")
    assert code == 0, err


@pytest.mark.parametrize(("spec", "needle"), [("ids", "NAME=FILE.npy"),
                                              ("ids=/nonexistent.npy", "does not exist"),
                                              ("nope=EXAMPLE", "unknown input")])
def test_run_input_errors_exit_2(embed: Path, spec: str, needle: str) -> None:
    code, _, err = run("run", str(embed), "-i", spec.replace("EXAMPLE", str(EXAMPLE)))
    if needle == "unknown input":  # EXAMPLE is not .npy: the file is refused first
        needle = "not a .npy array"
    assert_one_line_error(code, err, 2, needle)


def test_kernel_by_unique_prefix() -> None:
    code, out, err = run("inspect-ir", str(EXAMPLE), "--stage", "loop", "-O", "0", "-k", "k000")
    assert code == 0 and "k000_conv" in out, err
    code, _, err = run("inspect-ir", str(EXAMPLE), "--stage", "fused", "-O", "0", "-k", "k00")
    assert_one_line_error(code, err, 2, "is a prefix of")


def test_help_documents_exit_codes_and_o_levels() -> None:
    helps = {verb: " ".join(run(verb, "--help")[1].split())  # click wraps the help text
             for verb in ("compile", "bench", "run", "inspect-ir")}
    for text in [run("--help")[1], *helps.values()]:
        assert "Exit codes" in text and all(str(code) in text for code in EXIT_CODES)
    for verb in ("compile", "bench"):
        assert "constant folding" in helps[verb] and "the same in every verb" in helps[verb]
    assert "fused" in helps["inspect-ir"] and "fusion" in helps["inspect-ir"]


def test_targets_show_what_host_detected() -> None:
    code, out, _ = run("targets")
    assert code == 0 and "detected:" in out and "cores" in out


def test_bench_batch_on_fixed_batch_model_is_an_input_error(tmp_path: Path) -> None:
    model = _save(tmp_path, "fixed", [helper.make_node("Relu", ["x"], ["y"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    code, _, err = run("bench", str(model), "--batch", "4", "--runs", "1")
    assert_one_line_error(code, err, 2, "fixes the batch", "--compare none")


def test_bench_compare_none_has_no_peer_columns() -> None:
    code, out, err = run("bench", str(EXAMPLE), "--compare", "none", "--runs", "2", "--warmup",
                         "0", "--threads", "1")
    assert code == 0, err
    assert "none ms" not in out and "None" not in out and "match" not in out
    assert "tiny_cnn" in out


def _result(name: str, kernels: int = 0, peer: float | None = 2.0):  # type: ignore[no-untyped-def]
    from deepc.bench import BenchResult, Timing

    r = BenchResult(name, 1, Timing(1.0, 1.1, 3), matches=peer is not None)
    if peer is not None:
        r.peer, r.peer_name = Timing(peer, peer, 3), "onnxruntime"
    r.profile = [{"kernel": f"k{k:03d}_conv_add_relu_with_a_long_fused_name", "ops": ["conv"],
                  "ms": 0.1 + k, "share": 1 / max(kernels, 1), "gflops": 1.0}
                 for k in range(kernels)]
    return r


def _text(table, width: int = 80, terminal: bool = False) -> str:  # type: ignore[no-untyped-def]
    from deepc.cli_common import print_table

    console = Console(file=io.StringIO(), width=width, force_terminal=terminal, color_system=None)
    print_table(table, console)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_ratio_says_which_way_it_goes() -> None:
    from deepc.cli_bench import results_table

    text = _text(results_table([_result("m")], "onnxruntime", "host", 3), width=200)
    assert "deepc/onnxruntime" in text and "below 1 deepc is faster" in text and "0.50" in text


def test_profile_says_how_many_kernels_it_shows() -> None:
    from deepc.cli_bench import profile_table

    text = _text(profile_table(_result("m", kernels=54), top=25), width=300)
    assert "showing 25 of 54 kernels (--top N for more)" in text
    assert "all 3 kernels" in _text(profile_table(_result("m", kernels=3)), width=300)


@pytest.mark.parametrize("terminal", [False, True])
def test_tables_never_cut_names(terminal: bool) -> None:
    """Off a terminal the table is as wide as it needs; in a narrow one names fold."""
    from deepc.cli_bench import results_table

    name = "efficientnet_b0_with_a_name_longer_than_any_column_would_be"
    text = _text(results_table([_result(name)], "onnxruntime", "host", 3), terminal=terminal)
    assert "…" not in text
    if not terminal:
        assert name in text and max(map(len, text.splitlines())) > 80
    else:
        assert "".join(ln.split("│")[1].strip() for ln in text.splitlines()
                       if ln.count("│") > 2).startswith(name)


def test_plain_progress_off_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepc.cli_common

    monkeypatch.setattr(deepc.cli_common, "QUIET_SECONDS", 0.0)
    code, _, err = run("compile", str(EXAMPLE), "-o", str(tmp_path / "m.tar"))
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) >= 3 and all(ln.startswith("deepc: compile tiny_cnn.onnx: ") for ln in lines)
    with tarfile.open(tmp_path / "m.tar") as tar:
        assert "manifest.json" in tar.getnames()


def test_unwritable_output_dir_is_refused_before_running(embed: Path) -> None:
    code, out, err = run("run", str(embed), "-d", "/proc/no/such/dir")
    assert_one_line_error(code, err, 2, "--output-dir")
    assert out == ""


def test_bench_batch_must_not_be_negative() -> None:
    code, _, err = run("bench", str(EXAMPLE), "--batch", "-1")
    assert code == 2 and "--batch" in err


def test_an_error_is_one_line_whatever_its_message_holds() -> None:
    import click
    from click.testing import CliRunner

    from deepc.cli_common import handle_errors
    from deepc.errors import InputError

    @click.command()
    @handle_errors
    def boom() -> None:
        raise InputError("first line\nsecond [bold]line[/bold]")

    result = CliRunner().invoke(boom, [])
    assert result.exit_code == 2
    assert result.stderr == "error: first line second [bold]line[/bold]\n"

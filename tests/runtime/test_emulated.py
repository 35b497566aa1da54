"""Emulated bundles without an emulator: a host runner behind a stand-in "emulator" command.

The fake model's bundle claims an AArch64 triple, so `deepc.load` takes the emulated path; its
bin/run_model is the C example built for the host, and the emulator is `env` (or a shell line
that misbehaves), which exercises the file protocol, threads, timing and error wording.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepc
from deepc.backends import compilers
from deepc.compiler.packagers.cpu import build_runner
from deepc.errors import DeepcError, ToolchainError
from deepc.runtime.bundle import read_bundle
from deepc.runtime.c_example import MAIN, RUNNER, render_main
from deepc.runtime.emulated import emulator_argv
from deepc.target import Target
from tests.runtime.test_model import bundle, expected
from tests.test_cli import EXAMPLE, assert_one_line_error, run

FOREIGN = "aarch64-unknown-linux-gnu"


def foreign(host: Target, emulator: str, **toolchain: Any) -> dict[str, Any]:
    """The host target as a dict that claims another architecture and names `emulator`."""
    data = host.to_dict()
    data["isa"] = {**data["isa"], "triple": FOREIGN}
    data["toolchain"] = {**data["toolchain"], "emulator": emulator, **toolchain}
    return data


@pytest.fixture(scope="module")
def host_runner(fake_model_lib: Path, host: Target,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/run_model for the fake model, built on this machine like package.py builds it."""
    plain = read_bundle(bundle(tmp_path_factory.mktemp("plain") / "fake.tar", fake_model_lib,
                               host))
    root = tmp_path_factory.mktemp("root")
    shutil.copytree(plain.root, root, dirs_exist_ok=True)
    (root / MAIN).parent.mkdir(parents=True, exist_ok=True)
    (root / MAIN).write_text(render_main(1, 2))
    return build_runner(root, host)


def emulated_bundle(path: Path, library: Path, runner: Path, target: dict[str, Any]) -> Path:
    return bundle(path, library, target, extra={"runner": RUNNER},
                  extra_files={RUNNER: runner})


def test_foreign_bundle_runs_through_its_runner(fake_model_lib: Path, host_runner: Path,
                                                host: Target, tmp_path: Path) -> None:
    model = deepc.load(emulated_bundle(tmp_path / "m.tar", fake_model_lib, host_runner,
                                       foreign(host, "env")))
    assert model.emulated and model.emulator == "env"
    x = np.random.default_rng(0).standard_normal((4, 250)).astype(np.float32)
    out = model.run({"x": x.astype(np.float16)})  # converted as for native bundles
    y, total = expected(x.astype(np.float16))
    np.testing.assert_array_equal(out["y"], y)
    assert out["total"].dtype == np.float64 and out["total"] == pytest.approx(total, rel=1e-12)
    model.set_num_threads(3)
    assert model.num_threads == 3
    model.set_num_threads(0)
    assert model.num_threads >= 1  # asked of the runner (`run_model -i`)
    times = model.time_runs({"x": x}, runs=4, warmup=2)
    assert times.emulated and times.emulator == "env" and len(times.seconds) == 4


def test_failing_run_reads_like_a_native_one(fake_model_lib: Path, host_runner: Path,
                                             host: Target, tmp_path: Path) -> None:
    model = deepc.load(emulated_bundle(tmp_path / "m.tar", fake_model_lib, host_runner,
                                       foreign(host, "env")))
    x = np.zeros((4, 250), np.float32)
    x[0, 0] = -12345  # fake_model.c returns 5 for this
    with pytest.raises(DeepcError, match="deepc_run returned 5 — the compiled model failed"):
        model.run({"x": x})


@pytest.mark.parametrize(("emulator", "message"), [
    ("sh -c 'kill -ILL $$' sh", "illegal instruction under .* name a newer one .*-cpu max"),
    ("sh -c 'echo qemu: oops >&2; exit 7' sh", r"run_model failed under .*\(exit 7\): qemu: oops"),
], ids=["sigill", "crash"])
def test_emulator_failures_are_explained(fake_model_lib: Path, host_runner: Path, host: Target,
                                         tmp_path: Path, emulator: str, message: str) -> None:
    model = deepc.load(emulated_bundle(tmp_path / "m.tar", fake_model_lib, host_runner,
                                       foreign(host, emulator)))
    with pytest.raises(DeepcError, match=message):
        model.run({"x": np.zeros((4, 250), np.float32)})


@pytest.mark.parametrize(("toolchain", "message"), [
    ({"emulator": "deepc-no-such-qemu -L /usr", "emulator_package": "qemu-user"},
     "emulator 'deepc-no-such-qemu' .* is not installed — install it with"
     " `apt-get install qemu-user`"),
    ({"emulator": "env -L /deepc/no/such/sysroot", "cc_package": "gcc-arm-linux-gnueabihf"},
     "sysroot /deepc/no/such/sysroot .* is missing — install it with"
     " `apt-get install gcc-arm-linux-gnueabihf`"),
    # the C library alone serves qemu's -L: zig builds need no gcc cross compiler
    ({"emulator": "env -L /deepc/no/such/sysroot", "cc_package": "gcc-arm-linux-gnueabihf",
      "sysroot_package": "libc6-armhf-cross"},
     "sysroot /deepc/no/such/sysroot .* is missing — install it with"
     " `apt-get install libc6-armhf-cross`"),
], ids=["emulator", "sysroot", "sysroot-package"])
def test_missing_emulator_names_the_package(toolchain: dict[str, str], message: str) -> None:
    target = {"name": "board", "toolchain": toolchain}
    with pytest.raises(ToolchainError, match=message) as info:
        emulator_argv(target)
    assert "\n" not in str(info.value)


def test_cli_run_without_the_emulator_is_one_line(fake_model_lib: Path, host_runner: Path,
                                                  host: Target, tmp_path: Path) -> None:
    target = foreign(host, "deepc-no-such-qemu", emulator_package="qemu-user")
    path = emulated_bundle(tmp_path / "m.tar", fake_model_lib, host_runner, target)
    code, _, err = run("run", str(path))
    assert_one_line_error(code, err, 3, "deepc-no-such-qemu", "apt-get install qemu-user")


def test_cli_compile_without_the_cross_compiler_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither zig nor the gcc: the one line names both ways to get a compiler."""
    monkeypatch.setattr(compilers, "zig_command", lambda: None)
    board = tmp_path / "board.toml"
    board.write_text('name = "board"\ninherit = "rpi3"\n\n[toolchain]\n'
                     'cc = "deepc-no-such-gcc"\ncc_package = "gcc-deepc-board"\n')
    code, _, err = run("compile", str(EXAMPLE), "-t", str(board), "-o", str(tmp_path / "m.tar"))
    assert_one_line_error(code, err, 3, "deepc-no-such-gcc", "apt-get install gcc-deepc-board",
                          "pip install 'deepc[cross]'")
    assert not (tmp_path / "m.tar").exists()


def test_runner_is_built_only_for_targets_with_an_emulator(host: Target, tmp_path: Path) -> None:
    compiled = deepc.compile(EXAMPLE, host)
    plain = read_bundle(compiled.save(tmp_path / "plain.tar"))
    assert "runner" not in plain.manifest and RUNNER not in plain.manifest["files"]
    assert {MAIN, "example/Makefile"} <= set(plain.manifest["files"])
    compiled.target = replace(host, toolchain=replace(host.toolchain, emulator="env"))
    with_runner = read_bundle(compiled.save(tmp_path / "runner.tar"))
    assert with_runner.manifest["runner"] == RUNNER
    assert with_runner.file(RUNNER).read_bytes()[:4] == b"\x7fELF"


def test_cli_run_says_it_ran_under_the_emulator(fake_model_lib: Path, host_runner: Path,
                                                host: Target, tmp_path: Path) -> None:
    target = foreign(host, "env")
    path = emulated_bundle(tmp_path / "m.tar", fake_model_lib, host_runner, target)
    code, out, err = run("run", str(path), "--json")
    assert code == 0, err
    assert set(json.loads(out)) == {"y", "total"}  # stdout stays JSON; the note is on stderr
    assert "emulator `env`" in err and f"target {target['name']!r}" in err and FOREIGN in err
    native = bundle(tmp_path / "native.tar", fake_model_lib, host)
    code, out, err = run("run", str(native), "--json")
    assert code == 0 and "emulator" not in err, err


def test_bench_table_flags_emulated_times() -> None:
    from deepc.bench import BenchResult, Timing
    from deepc.cli import emulated_caption

    native = BenchResult("m", 1, Timing(1.0, 1.0, 3))
    emulated = BenchResult("m", 1, Timing(1.0, 1.0, 3), emulated=True, emulator="qemu-arm -x")
    assert emulated_caption([native]) is None
    caption = emulated_caption([native, emulated])
    assert caption is not None and "`qemu-arm -x`" in caption and "not on the device" in caption
    assert emulated.to_dict()["emulated"] is True
    assert emulated.to_dict()["emulator"] == "qemu-arm -x"
    assert "emulator" not in native.to_dict()

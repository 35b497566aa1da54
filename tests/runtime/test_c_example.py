"""The bundle's C example: rendering, and built with the host cc from an unpacked bundle."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.backends.compilers import CCompiler
from deepc.runtime.bundle import read_bundle
from deepc.runtime.c_example import render_main, render_makefile
from deepc.runtime.header import render_header
from deepc.runtime.inputs import random_arrays
from deepc.target import Target, load_target
from tests.test_cli import EXAMPLE

STRICT = "-std=c11 -O2 -Wall -Wextra -Werror -pedantic"


def test_main_has_one_row_per_tensor() -> None:
    text = render_main(2, 1)
    assert "@" not in text
    assert "{DEEPC_INPUT1_NAME, DEEPC_INPUT1_DTYPE, DEEPC_INPUT1_RANK," in text
    assert "DEEPC_OUTPUT0_NAME" in text and "DEEPC_OUTPUT1_NAME" not in text


def test_makefile_uses_the_target_compiler_and_flags() -> None:
    gcc = CCompiler("cc", ("arm-linux-gnueabihf-gcc",), (), "", honours_floor=False)
    text = render_makefile(load_target("rpi3"), gcc)
    assert "CC = arm-linux-gnueabihf-gcc\n" in text
    assert "-mcpu=cortex-a53 -mfpu=neon-vfpv4 -mfloat-abi=hard" in text
    # zig takes the CPU in its own spelling, in CC; the other flags suit gcc as well
    zig = CCompiler("zig", ("zig", "cc", "-target", "arm-linux-gnueabihf.2.28",
                            "-mcpu=cortex_a53"), (), "", honours_floor=True)
    text = render_makefile(load_target("rpi3"), zig)
    assert "CC = zig cc -target arm-linux-gnueabihf.2.28 -mcpu=cortex_a53\n" in text
    assert "CFLAGS = -std=c11 -O2 -Wall -mfpu=neon-vfpv4 -mfloat-abi=hard\n" in text
    assert "make CC=arm-linux-gnueabihf-gcc" in text
    # make turns $$ into $, the recipe's shell keeps $ORIGIN for the dynamic loader
    assert "LDFLAGS = -L../lib '-Wl,-rpath,$$ORIGIN/../lib'\n" in text
    assert "\t$(CC) $(CFLAGS) -I../include -o $@ main.c $(LDFLAGS) $(LDLIBS)\n" in text


@pytest.fixture(scope="module")
def host_bundle(host: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return deepc.compile(EXAMPLE, host).save(tmp_path_factory.mktemp("example") / "tiny.tar")


def test_header_matches_the_manifest(host_bundle: Path) -> None:
    """package.py renders the header before the manifest exists; both must agree."""
    b = read_bundle(host_bundle)
    assert b.header_path.read_text() == render_header(b.manifest)


def run_example(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["./run_model", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, check=False)


def test_example_builds_from_the_unpacked_bundle_and_matches(host_bundle: Path,
                                                             tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed: apt-get install make")
    with tarfile.open(host_bundle) as tar:
        tar.extractall(tmp_path, filter="data")
    example = tmp_path / "example"
    build = subprocess.run(["make", "-C", str(example), f"CFLAGS={STRICT}"],
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr

    info = run_example("-i", cwd=example)
    assert info.returncode == 0, info.stderr
    assert "input 0 input float32[1x3x32x32] 12288 bytes\n" in info.stdout
    assert "output 0 probs float32[1x10] 40 bytes\n" in info.stdout

    x = random_arrays([("input", (1, 3, 32, 32), "float32")], seed=2)["input"]
    x.tofile(tmp_path / "x.bin")
    done = run_example("-n", "3", "-w", "1", "-t", "1", "../params.bin", tmp_path / "x.bin",
                       tmp_path / "y.bin", cwd=example)
    assert done.returncode == 0, done.stderr
    assert [line.split()[:2] for line in done.stdout.splitlines()] == [
        ["run", "1"], ["run", "2"], ["run", "3"]]
    got = np.fromfile(tmp_path / "y.bin", np.float32).reshape(1, 10)
    np.testing.assert_array_equal(got, deepc.load(host_bundle).run({"input": x})["probs"])

    short = run_example("../params.bin", "../manifest.json", tmp_path / "y.bin", cwd=example)
    assert short.returncode == 2 and "bytes, input needs 12288" in short.stderr
    usage = run_example("../params.bin", cwd=example)
    assert usage.returncode == 2 and "params.bin input.bin probs.bin" in usage.stderr

"""Choosing a target's C compiler (zig first, then gcc) and the libc floor check on ELF files."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from deepc.backends import compilers
from deepc.backends.compilers import choose, musl_target
from deepc.backends.libc_floor import check_libc_floor, glibc_versions
from deepc.errors import ToolchainError
from deepc.target import Target, load_target
from tests.test_cli import EXAMPLE, assert_one_line_error, run

THREADS = """#include <pthread.h>
static void *f(void *a) { return a; }
int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }
"""


def with_toolchain(target: Target, **fields: object) -> Target:
    return replace(target, toolchain=replace(target.toolchain, **fields))


def test_zig_comes_first_and_targets_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compilers.ENV, raising=False)
    monkeypatch.setattr(compilers, "zig_command", lambda: ["zig"])
    monkeypatch.setattr(compilers, "_zig_identity", lambda argv0: "zig 0.0")
    cc = choose(load_target("rpi3"))
    assert cc.kind == "zig" and cc.honours_floor
    assert cc.argv == ("zig", "cc", "-target", "arm-linux-gnueabihf.2.28", "-mcpu=cortex_a53")
    assert cc.static_argv[:4] == ("zig", "cc", "-target", "arm-linux-musleabihf")
    assert cc.static_argv[-1] == "-static"
    # its CPU is in argv, in zig's spelling: the target's -mcpu is left out, the rest kept
    assert cc.flags(["-mcpu=cortex-a53", "-mfpu=neon-vfpv4"]) == ["-mfpu=neon-vfpv4"]
    floor = with_toolchain(load_target("rpi4"), libc="glibc-2.31")
    assert choose(floor).argv[3:] == ("aarch64-linux-gnu.2.31", "-mcpu=cortex_a72")


def test_the_environment_narrows_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compilers, "zig_command", lambda: ["zig"])
    monkeypatch.setattr(compilers, "_zig_identity", lambda argv0: "zig 0.0")
    board = with_toolchain(load_target("rpi3"), cc="sh")  # a cc that exists everywhere
    monkeypatch.setenv(compilers.ENV, "cc")
    assert choose(board).kind == "cc" and choose(board).argv == ("sh",)
    monkeypatch.setenv(compilers.ENV, "zig")
    assert choose(board).kind == "zig"
    assert choose(load_target("host")).kind == "cc"  # lists no zig: keeps its cc
    monkeypatch.setenv(compilers.ENV, "tcc")
    with pytest.raises(ToolchainError, match="DEEPC_CC=tcc names no compiler deepc knows"):
        choose(board)


def test_gcc_when_zig_is_missing_and_both_named_when_neither(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compilers.ENV, raising=False)
    monkeypatch.setattr(compilers, "zig_command", lambda: None)
    assert choose(with_toolchain(load_target("aarch64"), cc="sh")).kind == "cc"
    board = with_toolchain(load_target("aarch64"), cc="deepc-no-such-gcc")
    with pytest.raises(ToolchainError) as info:
        choose(board)
    message = str(info.value)
    assert "zig or 'deepc-no-such-gcc' is not installed" in message
    assert "pip install 'deepc[cross]'" in message
    assert "apt-get install gcc-aarch64-linux-gnu" in message


def test_musl_twins() -> None:
    assert musl_target("arm-linux-gnueabihf") == "arm-linux-musleabihf"
    assert musl_target("aarch64-linux-gnu") == "aarch64-linux-musl"


@pytest.fixture(scope="module")
def threaded_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A program built with this machine's gcc against its glibc, calling pthread_create."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler here: apt-get install gcc")
    root = tmp_path_factory.mktemp("floor")
    (root / "t.c").write_text(THREADS)
    subprocess.run([cc, "-O2", "-pthread", "-o", str(root / "t"), str(root / "t.c")],
                   check=True)
    return root / "t"


def test_versions_name_the_symbols_bound_to_them(threaded_program: Path) -> None:
    versions = glibc_versions(threaded_program)
    newest = max(versions)
    if newest < (2, 34):
        pytest.skip(f"this glibc predates 2.34 (newest version used: {newest})")
    # glibc 2.34 moved the pthread functions into libc under a new version
    assert "pthread_create" in versions[(2, 34)]


def test_a_file_above_the_floor_is_refused(threaded_program: Path) -> None:
    host = load_target("host")
    newest = max(glibc_versions(threaded_program))
    text = ".".join(map(str, newest[:2]))
    check_libc_floor(threaded_program, with_toolchain(host, libc=f"glibc-{text}"), "t")
    check_libc_floor(threaded_program, host, "t")  # no floor, nothing to check
    below = with_toolchain(host, libc=f"glibc-{newest[0]}.{newest[1] - 1}")
    with pytest.raises(ToolchainError, match=f"t built for target .* needs GLIBC_{text} .*"
                                             "pip install 'deepc\\[cross\\]'"):
        check_libc_floor(threaded_program, below, "t")


def test_static_runner_is_for_cpu_targets(tmp_path: Path) -> None:
    code, _, err = run("compile", str(EXAMPLE), "-t", "wasm32-simd", "--static-runner", "-o",
                       str(tmp_path / "m.tar"))
    assert_one_line_error(code, err, 2, "--static-runner", "wasm")
    assert not (tmp_path / "m.tar").exists()

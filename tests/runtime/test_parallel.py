"""The C thread pool: every index once, chunking, nesting, thread counts, JIT and cross builds."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepc.backends.compilers import choose
from deepc.backends.link import (
    RUNTIME_DIR,
    RUNTIME_SOURCE,
    arch_flags,
    compile_runtime,
    link_shared,
    load_runtime_for_jit,
    runtime_library,
)
from deepc.errors import ToolchainError
from deepc.target import Target, load_target
from tests.runtime.conftest import C_DIR, build_object, cc

TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


def run_checked(argv: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def pool_check(host: Target, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pool") / "pool_check"
    cc("-std=c11", "-O2", "-pthread", f"-I{RUNTIME_DIR}", C_DIR / "pool_check.c",
       RUNTIME_SOURCE, "-o", out)
    return out


@pytest.mark.parametrize("spin_us", ["100", "0"], ids=["spinning", "sleeping"])
def test_pool_check_program(pool_check: Path, spin_us: str) -> None:
    # DEEPC_SPIN_US=0 sends every worker to sleep between jobs: the wake-up path under load
    assert "pool ok" in run_checked([str(pool_check)], {"DEEPC_SPIN_US": spin_us})


@pytest.fixture(scope="module")
def runtime(host: Target, tmp_path_factory: pytest.TempPathFactory) -> tuple[ctypes.CDLL, ...]:
    """The runtime as a shared library, and record.c linked against it."""
    lib = runtime_library(host)
    out = tmp_path_factory.mktemp("record")
    obj = build_object(C_DIR / "record.c", out)
    cb = link_shared([obj, lib], host, out / "record.so")
    rt = ctypes.CDLL(str(lib))
    rt.deepc_parallel_for.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    rt.deepc_set_num_threads.argtypes = [ctypes.c_int32]
    return rt, ctypes.CDLL(str(cb))


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("n", [0, 1, 3, 1000])
def test_every_index_once(runtime: tuple[ctypes.CDLL, ...], threads: int, n: int) -> None:
    rt, cb = runtime
    rt.deepc_set_num_threads(threads)
    assert rt.deepc_get_num_threads() == threads
    counts = np.zeros(max(n, 1), np.int32)
    rt.deepc_parallel_for(ctypes.cast(cb.record, ctypes.c_void_p), counts.ctypes.data, n)
    assert (counts[:n] == 1).all()
    assert counts[n:].sum() == 0


def test_nested_calls_run_serially(runtime: tuple[ctypes.CDLL, ...]) -> None:
    rt, cb = runtime
    rt.deepc_set_num_threads(2)
    counts = np.zeros((3, 100), np.int32)
    rt.deepc_parallel_for(ctypes.cast(cb.record_nested, ctypes.c_void_p), counts.ctypes.data, 3)
    assert (counts == 1).all()


def test_zero_threads_means_all_cores(runtime: tuple[ctypes.CDLL, ...]) -> None:
    rt, _ = runtime
    rt.deepc_set_num_threads(0)
    assert rt.deepc_get_num_threads() == len(os.sched_getaffinity(0))


def test_thread_count_from_environment(pool_check: Path, tmp_path: Path) -> None:
    probe = tmp_path / "probe.c"
    probe.write_text('#include <stdio.h>\n#include "deepc_runtime.h"\n'
                     'int main(void) { printf("%d", deepc_get_num_threads()); return 0; }\n')
    cc("-std=c11", "-pthread", f"-I{RUNTIME_DIR}", probe, RUNTIME_SOURCE, "-o", tmp_path / "p")
    assert run_checked([str(tmp_path / "p")], {"DEEPC_NUM_THREADS": "3"}) == "3"
    cores = str(len(os.sched_getaffinity(0)))
    assert run_checked([str(tmp_path / "p")], {"DEEPC_NUM_THREADS": "lots"}) == cores


# A JIT-compiled kernel fills out[i] = i through the pool, as the LLVM backend's tasks do.
JIT_IR = """
declare void @deepc_parallel_for(ptr, ptr, i64)

define internal void @task(ptr %ctx, i64 %begin, i64 %end) {
entry:
  %empty = icmp sge i64 %begin, %end
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [ %begin, %entry ], [ %next, %loop ]
  %slot = getelementptr i64, ptr %ctx, i64 %i
  store i64 %i, ptr %slot
  %next = add i64 %i, 1
  %more = icmp slt i64 %next, %end
  br i1 %more, label %loop, label %done
done:
  ret void
}

define void @fill(ptr %out, i64 %n) {
  call void @deepc_parallel_for(ptr @task, ptr %out, i64 %n)
  ret void
}
"""


def test_jit_kernels_call_the_runtime(host: Target) -> None:
    import llvmlite.binding as llvm

    rt = load_runtime_for_jit()
    assert load_runtime_for_jit() is rt  # loaded once per process
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    mod = llvm.parse_assembly(JIT_IR)
    tm = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    fill = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("fill"))
    rt.deepc_set_num_threads(2)
    out = np.full(1001, -1, np.int64)
    fill(out.ctypes.data, 1001)
    np.testing.assert_array_equal(out, np.arange(1001))


def test_runtime_object_is_cached(host: Target) -> None:
    first = compile_runtime(host)
    mtime = first.stat().st_mtime_ns
    assert compile_runtime(host) == first
    assert first.stat().st_mtime_ns == mtime


def test_arch_flags_come_from_the_target() -> None:
    assert arch_flags(load_target("host")) == ["-march=native"]
    assert arch_flags(load_target("x86_64"))[0] == "-march=haswell"  # from its cflags
    assert arch_flags(load_target("aarch64")) == ["-mcpu=cortex-a72"]
    rpi3 = load_target("rpi3")
    assert arch_flags(rpi3)[0] == "-mcpu=cortex-a53" and "-mfloat-abi=hard" in arch_flags(rpi3)


def test_missing_compiler_names_the_package() -> None:
    import dataclasses

    rpi3 = load_target("rpi3")
    # gcc alone (zig, listed first, may well be installed)
    broken = dataclasses.replace(rpi3, toolchain=dataclasses.replace(
        rpi3.toolchain, cc="deepc-no-such-gcc", compilers=("cc",)))
    with pytest.raises(ToolchainError, match=r"deepc-no-such-gcc.*apt-get install "
                                             r"gcc-arm-linux-gnueabihf"):
        compile_runtime(broken)


CROSS = [
    # qemu 7.2 models no 32-bit Cortex-A53 and its Cortex-A7 lacks the ARMv8 AArch32
    # instructions (lda/stlex) that -mcpu=cortex-a53 code uses; "max" runs them
    ("rpi3", "qemu-arm -cpu max -L /usr/arm-linux-gnueabihf", "ARM,"),
    ("aarch64", None, "ARM aarch64"),
]


@pytest.mark.toolchain
@pytest.mark.parametrize(("name", "emulator", "machine"), CROSS, ids=[c[0] for c in CROSS])
def test_cross_build_runs_under_emulator(name: str, emulator: str | None, machine: str,
                                         tmp_path: Path) -> None:
    target = load_target(name)
    try:
        cross = choose(target)
    except ToolchainError as e:
        pytest.skip(str(e))
    obj = compile_runtime(target)
    if shutil.which("file"):
        assert machine in run_checked(["file", str(obj)])
    emulator = emulator or target.toolchain.emulator
    if not emulator or shutil.which(shlex.split(emulator)[0]) is None:
        pytest.skip(f"no emulator for {name}: apt-get install qemu-user")
    prog = tmp_path / "pool_check"
    run_checked([*cross.argv, "-std=c11", "-O2", "-pthread", *cross.flags(arch_flags(target)),
                 f"-I{RUNTIME_DIR}", str(C_DIR / "pool_check.c"), str(obj), "-o", str(prog)])
    # qemu-user aborts in a child forked from a threaded process: skip the fork check there
    assert "pool ok" in run_checked([*shlex.split(emulator), str(prog), "nofork"])

"""Cross targets (rpi3, rpi4, aarch64): compiled here, run under qemu-user, compared with
onnxruntime on this machine; the bundled C example built with the cross compiler; NEON code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from elftools.elf.elffile import ELFFile
from onnx import TensorProto, helper, numpy_helper

import deepc
from deepc.backends.libc_floor import glibc_versions
from deepc.cli import safe_filename
from deepc.errors import ToolchainError
from deepc.frontends import load
from deepc.runtime.emulated import emulator_argv
from deepc.runtime.inputs import random_inputs
from deepc.target import Target, load_target
from tests.conftest import ROOT, shared_model
from tests.helpers import run_ort
from tests.test_cli import run

pytestmark = pytest.mark.toolchain

RTOL, ATOL = 1e-3, 1e-4
EXAMPLE = ROOT / "examples" / "tiny_cnn.onnx"
PI_TARGETS = ("rpi3", "rpi4")
ELF_MACHINE = {"arm": 40, "aarch64": 183}  # e_machine: EM_ARM, EM_AARCH64
# a 128-bit NEON multiply(-accumulate) on float lanes: q registers on ARMv7, v.4s on AArch64
NEON_FLOAT_OP = re.compile(r"^\s+(v(fma|mla|mul)\.f32\s+q\d+|f(mla|mul)\s+v\d+\.4s)", re.M)


def cross_target(name: str) -> Target:
    """The target, or a skip naming the Debian package of its missing cross compiler/emulator."""
    from deepc.backends.link import compiler

    target = load_target(name)
    try:
        compiler(target)
        emulator_argv(target.to_dict())
    except ToolchainError as e:
        pytest.skip(str(e))
    return target


def arch_of(target: Target) -> str:
    return "aarch64" if target.triple.startswith("aarch64") else "arm"


class TinyBundles(dict[str, Path]):
    """examples/tiny_cnn.onnx compiled for a cross target the first time a test asks for it."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> Path:
        self[name] = deepc.compile(EXAMPLE, cross_target(name)).save(self.root / f"{name}.tar")
        return self[name]


@pytest.fixture(scope="module")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory) -> TinyBundles:
    return TinyBundles(tmp_path_factory.mktemp("cross"))


def elf_machine(data: bytes) -> tuple[int, int]:
    """(ELF class: 1 = 32-bit, 2 = 64-bit; e_machine) of a little-endian ELF file."""
    assert data[:4] == b"\x7fELF"
    return data[4], int.from_bytes(data[18:20], "little")


@pytest.mark.parametrize("name", [*PI_TARGETS, "aarch64"])
def test_tiny_cnn_runs_under_emulation(name: str, tiny_bundles: TinyBundles) -> None:
    path = tiny_bundles[name]
    target = load_target(name)
    with tarfile.open(path) as tar:
        members = set(tar.getnames())
        library = tar.extractfile("lib/model.so").read()  # type: ignore[union-attr]
        runner = tar.extractfile("bin/run_model").read()  # type: ignore[union-attr]
    assert {"example/main.c", "example/Makefile", "include/deepc_model.h"} <= members
    want = (2 if arch_of(target) == "aarch64" else 1, ELF_MACHINE[arch_of(target)])
    assert elf_machine(library) == want and elf_machine(runner) == want

    model = deepc.load(path)
    assert model.emulated and model.emulator.startswith("qemu-")
    feeds = random_inputs(load(EXAMPLE), seed=7)
    got = model.run(feeds)["probs"]
    np.testing.assert_allclose(got, run_ort(onnx.load(str(EXAMPLE)), feeds)[0], rtol=RTOL,
                               atol=ATOL)


def elf_members(bundle: Path, root: Path) -> dict[str, Path]:
    """The bundle unpacked under `root`: its ELF files (libraries, executables) by member."""
    with tarfile.open(bundle) as tar:
        tar.extractall(root, filter="data")
        names = [m.name for m in tar.getmembers() if m.isfile()]
    return {n: root / n for n in names if (root / n).read_bytes()[:4] == b"\x7fELF"}


@pytest.mark.parametrize("name", [*PI_TARGETS, "aarch64"])
def test_no_symbol_version_above_the_libc_floor(name: str, tiny_bundles: TinyBundles,
                                               tmp_path: Path) -> None:
    """Every ELF file of the bundle loads on the target's oldest glibc (2.28: Raspberry Pi
    OS Buster): no GLIBC_x.y it needs is newer (Debian 12's gcc would need GLIBC_2.34)."""
    floor = load_target(name).toolchain.glibc_floor()
    assert floor == (2, 28)
    elves = elf_members(tiny_bundles[name], tmp_path)
    assert {"lib/model.so", "bin/run_model"} <= set(elves)
    for member, path in elves.items():
        versions = glibc_versions(path)
        assert versions, f"{member}: no glibc symbol versions read"
        newer = {v: syms for v, syms in versions.items() if v > floor}
        assert not newer, f"{member} needs {newer}, above glibc {floor}"


def test_static_runner_runs_with_no_c_library(tiny_bundles: TinyBundles,
                                              tmp_path: Path) -> None:
    """--static-runner: bin/run_model has the model inside and no dynamic loader, runs under
    qemu without the target's C library (-L), and gives the dynamic bundle's numbers."""
    target = cross_target("rpi3")
    code, _, err = run("compile", str(EXAMPLE), "-t", "rpi3", "--static-runner", "-o",
                       str(tmp_path / "static.tar"))
    assert code == 0, err
    runner = elf_members(tmp_path / "static.tar", tmp_path / "static")["bin/run_model"]
    with runner.open("rb") as f:
        segments = {seg["p_type"] for seg in ELFFile(f).iter_segments()}
    assert "PT_INTERP" not in segments and "PT_DYNAMIC" not in segments
    feeds = random_inputs(load(EXAMPLE), seed=11)
    want = deepc.load(tiny_bundles["rpi3"]).run(feeds)["probs"]
    feeds["input"].tofile(tmp_path / "x.bin")
    emulator = emulator_argv(target.to_dict())
    k = emulator.index("-L")
    del emulator[k:k + 2]  # no sysroot: the runner needs no C library
    done = subprocess.run([*emulator, str(runner), str(tmp_path / "static" / "params.bin"),
                           str(tmp_path / "x.bin"), str(tmp_path / "y.bin")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.fromfile(tmp_path / "y.bin", np.float32).reshape(1, 10),
                                  want)
    model = deepc.load(tmp_path / "static.tar")
    assert model.bundle.manifest["runner_static"] is True
    np.testing.assert_array_equal(model.run(feeds)["probs"], want)


def run_c_example(bundle: Path, name: str, feeds: dict[str, np.ndarray],
                  like: list[np.ndarray], tmp_path: Path) -> list[np.ndarray]:
    """Unpack `bundle`, build example/ with its Makefile (the target's cross compiler), run
    it under qemu on `feeds`; the outputs read back with the dtypes and shapes of `like`."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed: apt-get install make")
    root = tmp_path / "board"
    with tarfile.open(bundle) as tar:
        tar.extractall(root, filter="data")
    build = subprocess.run(["make", "-C", str(root / "example")], capture_output=True,
                           text=True, check=False)
    assert build.returncode == 0, build.stderr
    ins = []
    for k, value in enumerate(feeds.values()):
        value.tofile(root / f"in{k}.bin")
        ins.append(str(root / f"in{k}.bin"))
    outs = [str(root / f"out{k}.bin") for k in range(len(like))]
    argv = [*emulator_argv(load_target(name).to_dict()), str(root / "example" / "run_model"),
            str(root / "params.bin"), *ins, *outs]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"run 1 [0-9.]+ ms\n", done.stdout)
    return [np.fromfile(out, ref.dtype).reshape(ref.shape) for out, ref in zip(outs, like)]


@pytest.mark.parametrize("name", PI_TARGETS)
def test_c_example_builds_and_matches(name: str, tiny_bundles: TinyBundles,
                                      tmp_path: Path) -> None:
    """example/Makefile with the cross compiler, run under qemu: the same outputs as Python."""
    path = tiny_bundles[name]
    feeds = random_inputs(load(EXAMPLE), seed=3)
    want = deepc.load(path).run(feeds)["probs"]
    (got,) = run_c_example(path, name, feeds, [want], tmp_path)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, run_ort(onnx.load(str(EXAMPLE)), feeds)[0], rtol=RTOL,
                               atol=ATOL)


def test_timing_hook_says_times_are_emulated(tiny_bundles: TinyBundles) -> None:
    model = deepc.load(tiny_bundles["rpi3"])
    model.set_num_threads(2)
    assert model.num_threads == 2
    times = model.time_runs(random_inputs(load(EXAMPLE), seed=1), runs=3, warmup=1)
    assert times.emulated and times.emulator == model.emulator
    assert len(times.seconds) == 3 and all(s > 0 for s in times.seconds)


def test_bench_times_emulated_runs_through_the_timing_hook(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`deepc bench` on a cross target: Model.time_runs (one emulator process, runner-timed),
    flagged as emulated, outputs checked against onnxruntime, no peer timed."""
    from deepc.runtime.model import Model

    target = cross_target("rpi3")
    calls: list[int] = []
    original = Model.time_runs

    def spy(self: Model, inputs: dict[str, np.ndarray], runs: int = 10,
            warmup: int = 1) -> object:
        calls.append(runs)
        return original(self, inputs, runs, warmup)

    monkeypatch.setattr(Model, "time_runs", spy)
    code, out, err = run("bench", str(EXAMPLE), "--target", "rpi3", "--runs", "4",
                         "--warmup", "1", "--threads", "1", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert calls == [4] and row["runs"] == 4 and row["threads"] == 1
    assert row["emulated"] is True and row["emulator"] == target.toolchain.emulator
    assert row["outputs_match"] is True
    assert row["onnxruntime_ms"] is None and row["ratio"] is None
    code, out, err = run("bench", str(EXAMPLE), "--target", "rpi3", "--runs", "2",
                         "--warmup", "0")
    assert code == 0, err
    assert "emulated" in out and "EMULATED: timed under `qemu-arm" in " ".join(out.split())


def matmul_model(path: Path) -> Path:
    w = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 128])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 256])],
        [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("name", PI_TARGETS)
def test_hot_kernels_use_neon(name: str, tmp_path: Path) -> None:
    """`deepc inspect-ir --stage asm`: conv and matmul kernels multiply 4 floats at a time."""
    for model, op in ((EXAMPLE, "conv"), (matmul_model(tmp_path / "mm.onnx"), "matmul")):
        code, out, err = run("inspect-ir", str(model), "--target", name, "--stage", "asm",
                             "--json")
        assert code == 0, err
        texts = {k: v for k, v in json.loads(out).items() if f"_{op}" in k}
        assert texts, f"no {op} kernel"
        for kernel, asm in texts.items():
            assert NEON_FLOAT_OP.search(asm), f"{name} {kernel}: no NEON float multiply"


def test_cli_run_under_emulation(tiny_bundles: TinyBundles, tmp_path: Path) -> None:
    feeds = random_inputs(load(EXAMPLE), seed=5)
    np.save(tmp_path / "x.npy", feeds["input"])
    code, _, err = run("run", str(tiny_bundles["rpi4"]), "-i", f"input={tmp_path / 'x.npy'}",
                       "-d", str(tmp_path / "out"), "--threads", "1")
    assert code == 0, err
    emulator = load_target("rpi4").toolchain.emulator
    assert f"emulator `{emulator}`" in err and "target 'rpi4'" in err, err
    np.testing.assert_allclose(np.load(tmp_path / "out" / "probs.npy"),
                               run_ort(onnx.load(str(EXAMPLE)), feeds)[0], rtol=RTOL, atol=ATOL)


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.parametrize("name", PI_TARGETS)
@pytest.mark.parametrize("model", ["mobilenet_v2", "resnet18", "squeezenet1_1", "encoder"])
def test_shared_model_through_deepc_run(model: str, name: str, tmp_path: Path) -> None:
    """The acceptance check of issue 6: `deepc run` under qemu matches onnxruntime on x86."""
    path = shared_model(model)
    target = cross_target(name)
    bundle = deepc.compile(path, target).save(tmp_path / f"{model}.tar")
    graph = load(path)
    feeds = random_inputs(graph, seed=1234)
    args = []
    for input_name, value in feeds.items():
        np.save(tmp_path / f"{input_name}.npy", value)
        args += ["-i", f"{input_name}={tmp_path / f'{input_name}.npy'}"]
    code, _, err = run("run", str(bundle), *args, "-d", str(tmp_path / "out"))
    assert code == 0, err
    ours = [np.load(tmp_path / "out" / f"{safe_filename(n)}.npy") for n in graph.outputs]
    for got, want in zip(ours, run_ort(onnx.load(str(path)), feeds)):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # the bundled C example, built with the cross compiler: the same numbers, no Python
    for got, want in zip(run_c_example(bundle, name, feeds, ours, tmp_path), ours):
        np.testing.assert_array_equal(got, want)

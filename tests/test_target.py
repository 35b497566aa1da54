"""Target descriptions: shipped files, inheritance, validation messages, host detection."""

from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from deepc.errors import TargetError
from deepc.target import Target, list_targets, load_target
from deepc.target import host as host_mod
from deepc.target.loader import REPO_TARGETS, target_files

SHIPPED = sorted(p.stem for p in REPO_TARGETS.glob("*.toml"))
REQUIRED_TARGETS = (
    "host", "x86_64", "x86_64-avx512", "rpi3", "rpi4", "aarch64", "cuda-sm90", "cuda-sm80",
    "opencl-cpu", "opencl-gpu", "apple-m2", "wasm32-simd", "fpga-zcu104",
)
CONCRETE = [p.stem for p in sorted(REPO_TARGETS.glob("*.toml"))
            if "abstract = true" not in p.read_text()]

CPU_FILE = """
name = "{name}"
description = "test board"
[device]
kind = "cpu"
backend = "llvm"
[isa]
triple = "aarch64-unknown-linux-gnu"
cpu = "cortex-a72"
features = ["+neon"]
vector_bits = 128
accumulator_registers = 12
cores = 4
[memory]
l1d_kib = 32
l2_kib = 1024
cache_line = 64
"""


@pytest.fixture(autouse=True)
def _only_shipped_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPC_TARGETS_DIR", raising=False)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def error_of(spec: str | Path) -> str:
    with pytest.raises(TargetError) as info:
        load_target(spec)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- shipped files ----------------------------------------------------------------------------


def test_required_targets_are_shipped() -> None:
    assert set(REQUIRED_TARGETS) <= set(CONCRETE)


@pytest.mark.parametrize("name", CONCRETE)
def test_shipped_target_loads(name: str) -> None:
    target = load_target(name)
    assert target.name == name
    assert target.description
    assert Target.from_dict(target.to_dict()) == target
    kind = target.kind
    if kind in ("cpu", "wasm"):
        assert target.vector_bits in (128, 256, 512)
        assert target.cores >= 1
        assert target.vector_lanes("float32") == target.vector_bits // 32
    if kind == "cpu":
        assert target.l1d_kib < target.l2_kib
        assert target.cache_line in (32, 64, 128)
    if target.gpu is not None:
        assert target.max_threads_per_block % target.warp_size == 0
        assert target.shared_mem_per_block_kib > 0
    if kind == "cuda":
        assert target.arch.startswith("sm_")
        assert target.sm_count > 0 and target.registers_per_block > 0
    if kind == "fpga":
        assert min(target.dsp, target.bram, target.lut, target.clock_mhz) > 0


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in CONCRETE])
def test_abstract_bases_are_inherited_and_refuse_to_load(name: str) -> None:
    assert "abstract" in error_of(name)
    children = [n for n in CONCRETE if f'inherit = "{name}"' in target_files()[n].read_text()]
    assert children


def test_list_targets() -> None:
    names = [name for name, _ in list_targets()]
    assert names == sorted(names)
    assert "cuda-base" not in names
    assert all(description for _, description in list_targets())


def test_typed_accessors() -> None:
    rpi3 = load_target("rpi3")
    assert (rpi3.kind, rpi3.backend, rpi3.cores, rpi3.l2_kib) == ("cpu", "llvm", 4, 512)
    assert rpi3.triple == "armv7-unknown-linux-gnueabihf" and rpi3.cpu == "cortex-a53"
    assert rpi3.has_feature("neon") and rpi3.has_feature("+vfp4") and not rpi3.has_feature("sve")
    assert rpi3.llvm_features == "+neon,+vfp4"
    assert rpi3.fma and rpi3.vector_lanes("int8") == 16
    assert rpi3.toolchain.package_for("cc") == "gcc-arm-linux-gnueabihf"
    # the boards' C library floor: Raspberry Pi OS Buster's glibc, for 32 and 64 bits
    for name in ("rpi3", "rpi4", "aarch64"):
        toolchain = load_target(name).toolchain
        assert toolchain.glibc_floor() == (2, 28) and toolchain.compilers == ("zig", "cc")
    assert load_target("host").toolchain.glibc_floor() is None
    assert rpi3.toolchain.emulator is not None and rpi3.toolchain.emulator.startswith("qemu-arm")
    h100 = load_target("cuda-sm90")
    assert (h100.warp_size, h100.sm_count, h100.shared_mem_per_block_kib) == (32, 132, 227)
    assert h100.registers_per_block == 65536 and h100.l2_kib == 50 * 1024
    assert "mma.m16n8k16.f16" in h100.matrix_intrinsics
    assert "dp4a" in h100.dot_intrinsics
    rpi5 = load_target("rpi5")  # ARMv8.2: sdot/udot, unlike the Pi 3/4's A53/A72
    assert rpi5.dot_intrinsics == ("sdot",) and "+dotprod" in rpi5.llvm_features
    assert load_target("rpi4").dot_intrinsics == ()
    fpga = load_target("fpga-zcu104")
    assert (fpga.part, fpga.dsp, fpga.bram) == ("xczu7ev-ffvc1156-2-e", 1728, 312)
    assert (fpga.lut, fpga.clock_mhz, fpga.hls) == (230400, 200, "vitis")
    wasm = load_target("wasm32-simd")
    assert wasm.simd and not wasm.threads


def test_accessor_of_absent_capability_names_the_field() -> None:
    with pytest.raises(TargetError, match=r"'rpi3' \(cpu\) declares no gpu\.warp_size"):
        _ = load_target("rpi3").warp_size
    with pytest.raises(TargetError, match=r"isa\.vector_bits"):
        _ = load_target("cuda-sm90").vector_bits
    assert load_target("cuda-sm90").l3_kib is None  # optional accessors read None


def test_target_is_frozen() -> None:
    target = load_target("rpi4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.name = "other"  # type: ignore[misc]


# --- llvmlite accepts what the files declare -------------------------------------------------


@pytest.mark.parametrize("name", [n for n in CONCRETE if load_target(n).isa.triple])
def test_llvm_accepts_triple_cpu_and_features(name: str, capfd: pytest.CaptureFixture) -> None:
    target = load_target(name)
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    capfd.readouterr()
    machine = llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features=target.llvm_features)
    machine.emit_object(llvm.parse_assembly("define void @f() {\n  ret void\n}"))
    # LLVM ignores unknown CPUs and features with a warning on stderr, never an error
    assert "not a recognized" not in capfd.readouterr().err


# --- inheritance ------------------------------------------------------------------------------


def test_inherit_merges_tables_field_by_field(tmp_path: Path) -> None:
    write(tmp_path, "base", CPU_FILE.format(name="base"))
    child = write(tmp_path, "child", """
name = "child"
inherit = "base"
[isa]
cores = 8
features = ["+neon", "+dotprod"]
[memory]
l2_kib = 2048
""")
    target = load_target(child)
    assert target.name == "child" and target.description == ""  # own keys are not inherited
    assert (target.cores, target.cpu, target.vector_bits) == (8, "cortex-a72", 128)
    assert target.features == ("+neon", "+dotprod")  # arrays are replaced, not appended
    assert (target.l1d_kib, target.l2_kib) == (32, 2048)


def test_inherit_a_shipped_target_by_name(tmp_path: Path) -> None:
    board = write(tmp_path, "myboard", 'name = "myboard"\ninherit = "rpi4"\n[isa]\ncores = 2\n')
    target = load_target(board)
    assert (target.cores, target.cpu, target.l2_kib) == (2, "cortex-a72", 1024)


def test_targets_dir_env_adds_and_shadows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "myboard", 'name = "myboard"\ndescription = "mine"\ninherit = "rpi4"\n')
    write(tmp_path, "rpi3", CPU_FILE.format(name="rpi3"))
    monkeypatch.setenv("DEEPC_TARGETS_DIR", str(tmp_path))
    assert ("myboard", "mine") in list_targets()
    assert load_target("myboard").cpu == "cortex-a72"
    assert load_target("rpi3").triple == "aarch64-unknown-linux-gnu"


@pytest.mark.parametrize("chain", [("a", "a"), ("a", "b", "a"), ("a", "b", "c", "b")])
def test_inherit_cycle_is_reported(tmp_path: Path, chain: tuple[str, ...]) -> None:
    for name, parent in itertools.pairwise(chain):
        write(tmp_path, name, f'inherit = "{parent}"' + CPU_FILE.format(name=name))
    message = error_of(tmp_path / f"{chain[0]}.toml")
    assert "inherit cycle" in message and " -> ".join(chain[chain.index(chain[-1]):]) in message


def test_error_in_parent_names_the_parent_file(tmp_path: Path) -> None:
    write(tmp_path, "base", CPU_FILE.format(name="base").replace("cores = 4", "cores = 'four'"))
    child = write(tmp_path, "child", 'name = "child"\ninherit = "base"\n')
    assert error_of(child).startswith(f"{tmp_path / 'base.toml'}: isa.cores must be")


def test_missing_parent(tmp_path: Path) -> None:
    child = write(tmp_path, "child", 'name = "child"\ninherit = "nowhere"\n')
    assert "inherit = 'nowhere' names no target file" in error_of(child)


# --- validation messages ----------------------------------------------------------------------

BAD_FILES = [
    (("vector_bits = 128", "vector_bits = 'wide'"),
     "isa.vector_bits must be a positive integer, got 'wide'"),
    (("vector_bits = 128", "vector_bits = 0"), "isa.vector_bits must be a positive integer"),
    (("vector_bits = 128", "vectorbits = 128"), "unknown field isa.vectorbits — did you mean"),
    (("[memory]", "[memroy]"), "unknown key memroy — did you mean memory?"),
    (('kind = "cpu"', 'kind = "gpu"'), "device.kind must be one of cpu, cuda"),
    (('backend = "llvm"', 'backend = "java"'), "device.backend must be one of llvm"),
    (('backend = "llvm"', 'backend = "cuda"'), "device.backend 'cuda' cannot build for a cpu"),
    (('features = ["+neon"]', 'features = "+neon"'), "isa.features must be a list of strings"),
    (("cores = 4", "cores = 4\n[intrinsics]\nfma = 'yes'"), "intrinsics.fma must be true or"),
    (('name = "t"', ""), "name is required"),
    (('kind = "cpu"', ""), "device.kind is required"),
    (("cores = 4", ""), "isa.cores is required for cpu targets"),
    (("l2_kib = 1024", ""), "memory.l2_kib is required for cpu targets"),
    (("[memory]", "[gpu]\nwarp_size = 32\n[memory]"), "[gpu] describes cuda, opencl, metal"),
    (('description = "test board"', "intrinsics = 5"), "intrinsics must be a table, got 5"),
    (("cores = 4", "cores = 4 4"), "not valid TOML"),
    (("cores = 4", 'cores = 4\n[toolchain]\nlibc = "bullseye"'),
     'toolchain.libc must read like "glibc-2.28", got \'bullseye\''),
    (("cores = 4", 'cores = 4\n[toolchain]\ncompilers = ["clang"]\ncc = "cc"'),
     "toolchain.compilers lists 'clang'"),
    (("cores = 4", 'cores = 4\n[toolchain]\ncompilers = ["zig"]\nlibc = "glibc-2.28"'),
     "toolchain.compilers lists 'zig' but toolchain.zig_target is not set"),
]


@pytest.mark.parametrize(("edit", "expected"), BAD_FILES, ids=[e for _, e in BAD_FILES])
def test_validation_error_names_file_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    path = write(tmp_path, "t", CPU_FILE.format(name="t").replace(*edit, 1))
    message = error_of(path)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert " — " in message  # followed by what to do


KIND_FILES = [
    ('kind = "cuda"\nbackend = "cuda"\n[gpu]\nwarp_size = 32\nmax_threads_per_block = 1024\n'
     "shared_mem_per_block_kib = 48\nregisters_per_block = 65536\nsm_count = 4",
     "gpu.arch is required for cuda targets"),
    ('kind = "opencl"\nbackend = "opencl"\n[gpu]\nwarp_size = 32\nmax_threads_per_block = 256\n'
     "shared_mem_per_block_kib = 64\nshared_mem_per_sm_kib = 48",
     "gpu.shared_mem_per_block_kib (64) exceeds gpu.shared_mem_per_sm_kib (48)"),
    ('kind = "fpga"\nbackend = "hls"\n[fpga]\nclock_mhz = 200\ndsp = 1\nbram36 = 1\nlut = 1\n'
     'hls = "vitis"', "fpga.part is required for fpga targets"),
    ('kind = "fpga"\nbackend = "hls"\n[fpga]\nhls = "quartus"', "fpga.hls must be one of vitis"),
    ('kind = "wasm"\nbackend = "wasm"\n[isa]\ntriple = "wasm32-unknown-unknown"\ncpu = "generic"\n'
     "vector_bits = 128\naccumulator_registers = 12\n[wasm]\nsimd = true\nthreads = false",
     'wasm.simd is true but isa.features lacks "+simd128"'),
]


@pytest.mark.parametrize(("device", "expected"), KIND_FILES, ids=[e for _, e in KIND_FILES])
def test_per_kind_rules(tmp_path: Path, device: str, expected: str) -> None:
    path = write(tmp_path, "k", f'name = "k"\n[device]\n{device}\n')
    message = error_of(path)
    assert message.startswith(f"{path}: ") and expected in message


def test_unknown_name_lists_available_targets() -> None:
    message = error_of("rpi6")
    assert message.startswith("unknown target 'rpi6' — did you mean")
    assert all(name in message for name in REQUIRED_TARGETS)
    assert "cuda-base" not in message


def test_missing_path() -> None:
    assert "no such target file" in error_of("nowhere/board.toml")


def test_file_name_must_match_target_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "foo", CPU_FILE.format(name="bar"))
    monkeypatch.setenv("DEEPC_TARGETS_DIR", str(tmp_path))
    assert "name is 'bar' but the file is foo.toml" in error_of("foo")


def test_from_dict_validates() -> None:
    data = load_target("rpi3").to_dict()
    data["isa"]["cores"] = -1
    with pytest.raises(TargetError, match=r"^<dict>: isa\.cores must be a positive integer"):
        Target.from_dict(data)
    with pytest.raises(TargetError, match="inherit is only meaningful in a target file"):
        Target.from_dict({**load_target("rpi3").to_dict(), "inherit": "rpi4"})


# --- host detection ---------------------------------------------------------------------------


def test_host_detection_is_sane() -> None:
    target = load_target("host")
    assert target.triple == llvm.get_process_triple()
    assert target.cpu
    assert target.cores == os.cpu_count()
    assert target.vector_bits in (128, 256, 512)
    assert isinstance(target.fma, bool)
    if target.triple.startswith("x86_64"):
        assert target.has_feature("sse2") and target.vector_bits >= 128
        assert target.vector_bits == host_mod.vector_bits_of(target.features)
    caches = host_mod.read_caches()
    if caches:
        assert target.l1d_kib == caches["l1d_kib"]
    assert 4 <= target.l1d_kib < target.l2_kib
    assert target.dram_mib is None or target.dram_mib > 0


def test_host_falls_back_to_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_mod, "CACHE_DIR", tmp_path / "missing")
    target = load_target("host")
    assert (target.l1d_kib, target.l2_kib, target.cache_line) == (32, 256, 64)


def test_read_caches_parses_sysfs(tmp_path: Path) -> None:
    entries = [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"),
               (3, "Unified", "32M")]
    for i, (level, kind, size) in enumerate(entries):
        index = tmp_path / f"index{i}"
        index.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size),
                            ("coherency_line_size", 64)):
            (index / name).write_text(f"{value}\n")
    assert host_mod.read_caches(tmp_path) == {
        "l1d_kib": 48, "cache_line": 64, "l2_kib": 1024, "l3_kib": 32768}


@pytest.mark.parametrize(("features", "bits"), [
    (["+sse2", "+avx", "+avx2", "+avx512f"], 512), (["+sse2", "+avx2"], 256),
    (["+sse", "+sse2"], 128), (["+neon"], 128), (["+simd128"], 128), ([], None),
])
def test_vector_bits_from_features(features: list[str], bits: int | None) -> None:
    assert host_mod.vector_bits_of(features) == bits


def test_fma_from_features() -> None:
    assert host_mod.has_fma("aarch64-unknown-linux-gnu", [])
    assert host_mod.has_fma("armv7-unknown-linux-gnueabihf", ["+vfp4"])
    assert host_mod.has_fma("x86_64-unknown-linux-gnu", ["+fma"])
    assert not host_mod.has_fma("x86_64-unknown-linux-gnu", ["+avx"])

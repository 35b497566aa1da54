"""The stage chain's registries and schedule records: a backend is found by name, a target
whose backend is missing fails before any work, and every kernel's record replays."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import deepc
from deepc.backends import BACKENDS
from deepc.backends.llvm.backend import LlvmBackend
from deepc.cli import main
from deepc.compiler.pipeline import load_graph
from deepc.errors import BundleError, TargetError
from deepc.ir.loop_text import func_to_text
from deepc.lowering.kernels import group_kernel
from deepc.passes import PassContext, run_pipeline
from deepc.passes.fuse import groups_of
from deepc.schedule.record import ScheduleRecord
from deepc.schedule.schedule import Schedule
from deepc.target import load_target

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny_cnn.onnx"


def test_missing_backend_is_one_line_before_any_work(tmp_path: Path) -> None:
    # every target file's backend exists now: a CPU target asking for the plain-C one does not
    target = str(tmp_path / "plain-c.toml")
    Path(target).write_text('name = "plain-c"\ninherit = "x86_64"\n[device]\nkind = "cpu"\n'
                            'backend = "c"\n')
    out = tmp_path / "m.tar"
    result = CliRunner().invoke(main, ["compile", str(TINY), "-t", target, "-o", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "backend, which this version of deepc does not provide" in lines[0]
    assert not out.exists()
    with pytest.raises(TargetError, match="target 'plain-c' uses the"):
        deepc.compile(tmp_path / "no-such-model.onnx", target)  # fails on the target first


def test_a_registered_backend_is_used_without_a_driver_branch(tmp_path: Path,
                                                              monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []

    class Tracing(LlvmBackend):
        name = "c"

        def schedule(self, kernels, target, options):  # type: ignore[no-untyped-def]
            calls.append("schedule")
            return super().schedule(kernels, target, options)

    monkeypatch.setitem(BACKENDS._items, "c", Tracing())
    target = tmp_path / "c-host.toml"
    target.write_text('name = "c-host"\ninherit = "host"\n[device]\nkind = "cpu"\nbackend = "c"\n')
    compiled = deepc.compile(TINY, str(target))
    assert calls == ["schedule"] and compiled.backend.name == "c"
    model = deepc.load(compiled.save(tmp_path / "m.tar"))
    assert set(model.run(model.random_inputs())) == {"probs"}


def test_unknown_device_kind_of_a_bundle(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deepc.runtime import loaders

    path = deepc.compile(TINY, "host").save(tmp_path / "m.tar")
    monkeypatch.delitem(loaders.RUNTIMES._items, "cpu")
    with pytest.raises(BundleError, match="bundle for cpu devices, which this deepc cannot run"):
        deepc.load(path)


def _lowered(target: str) -> list:  # type: ignore[type-arg]
    ctx = PassContext(2)
    ctx.target = load_target(target)
    graph = run_pipeline(load_graph(TINY, None), 2, ctx)
    return [group_kernel(graph, g, k) for k, g in enumerate(groups_of(graph))]


@pytest.mark.parametrize("target", ["host", "x86_64-avx512", "rpi3"])
def test_records_replay_to_the_compiled_kernels(target: str) -> None:
    compiled = deepc.compile(TINY, target)
    lowered = _lowered(target)
    assert [r.kernel for r in compiled.records] == [k.name for k in compiled.kernels]
    for record, low, kern in zip(compiled.records, lowered, compiled.kernels):
        (steps,) = record.launches
        replayed = Schedule.from_list([list(s) for s in steps]).apply(low.func)
        assert func_to_text(replayed) == func_to_text(kern.func)
        assert record.knobs
        assert ScheduleRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_workload_keys(tmp_path: Path) -> None:
    twin = tmp_path / "twin.toml"  # the same hardware under another name and description
    twin.write_text('name = "twin"\ninherit = "x86_64"\ndescription = "a twin"\n')
    x86, avx512 = deepc.compile(TINY, "x86_64"), deepc.compile(TINY, "x86_64-avx512")
    keys = [r.workload.key for r in x86.records]
    assert len(set(keys)) == len(keys)  # the tiny net's kernels all differ
    assert keys == [r.workload.key for r in deepc.compile(TINY, str(twin)).records]
    # other hardware: other workloads, even where the loop nest is the same
    assert not set(keys) & {r.workload.key for r in avx512.records}


def test_manifest_lists_options_and_records(tmp_path: Path) -> None:
    compiled = deepc.compile(TINY, "host", opt_level=1)
    with tarfile.open(compiled.save(tmp_path / "m.tar")) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest["options"] == {"opt_level": 1}
    assert [s["kernel"] for s in manifest["schedules"]] == manifest["kernels"]
    assert all(s["workload"]["key"] and "launches" in s for s in manifest["schedules"])


def test_inspect_schedule_stage() -> None:
    result = CliRunner().invoke(main, ["inspect-ir", str(TINY), "--stage", "schedule"])
    assert result.exit_code == 0, result.output
    assert "knobs:" in result.output and "workload" in result.output

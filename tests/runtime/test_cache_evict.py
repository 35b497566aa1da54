"""The cache bound: parsing DEEPC_CACHE_MAX_BYTES, least-recently-used eviction, entries in
use kept, readers that lose a race extracting again, and `deepc cache info|clear`."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepc.cache_evict import LOCK_NAME, evict, hold, max_bytes, remove, usage
from deepc.cli import main
from deepc.errors import InputError
from deepc.rpc.jobs import JobRunner
from deepc.runtime import bundle as bundle_mod
from deepc.runtime.bundle import read_bundle
from tests.runtime.test_bundle import LIB, write


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("DEEPC_CACHE_DIR", str(root))
    monkeypatch.delenv("DEEPC_CACHE_MAX_BYTES", raising=False)
    return root


def entry(cache: Path, area: str, name: str, nbytes: int, age_s: float) -> Path:
    """A directory entry (bundles) or a file entry (cuda) of `nbytes`, used `age_s` ago."""
    path = cache / area / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if area == "bundles":
        path.mkdir()
        (path / "data").write_bytes(b"x" * nbytes)
    else:
        path.write_bytes(b"x" * nbytes)
    when = time.time() - age_s
    os.utime(path, (when, when))
    return path


@pytest.mark.parametrize(("text", "expect"), [
    (None, 2 << 30), ("", 2 << 30), ("0", 0), ("12345", 12345), ("500M", 500 << 20),
    ("2G", 2 << 30), ("2g", 2 << 30), ("2GiB", 2 << 30), ("64K", 64 << 10), ("1.5G", 3 << 29)])
def test_bound_is_parsed(monkeypatch: pytest.MonkeyPatch, text: str | None, expect: int) -> None:
    if text is not None:
        monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", text)
    assert max_bytes() == expect


@pytest.mark.parametrize("text", ["lots", "-5", "2X", "G", "1 2"])
def test_bad_bound_names_the_variable(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", text)
    with pytest.raises(InputError, match="DEEPC_CACHE_MAX_BYTES") as info:
        max_bytes()
    assert "\n" not in str(info.value)


def test_least_recently_used_go_first_across_areas(cache: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    old_b = entry(cache, "bundles", "b-old", 1000, 400)
    old_c = entry(cache, "cuda", "c-old.cubin", 1000, 300)
    mid_b = entry(cache, "bundles", "b-mid", 1000, 200)
    new_c = entry(cache, "cuda", "c-new.cubin", 1000, 100)
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "2500")
    assert evict() == [old_b, old_c]
    assert not old_b.exists() and not old_c.exists() and mid_b.exists() and new_c.exists()
    assert sum(a.nbytes for a in usage()) <= 2500
    assert not any((cache / ".trash").iterdir())  # moved to the trash, then deleted


def test_use_makes_an_entry_recent(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = entry(cache, "bundles", "old", 1000, 400)
    new = entry(cache, "bundles", "new", 1000, 100)
    for _ in range(2):  # the second use finds the lock file there already
        lock = hold(old)
        assert lock is not None
        lock.release()
        assert old.stat().st_mtime > new.stat().st_mtime
        os.utime(old, (time.time() - 400,) * 2)
    lock = hold(old)
    assert lock is not None
    lock.release()
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "1500")
    assert evict() == [new]
    assert old.exists()


def test_the_entry_just_written_is_kept(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = entry(cache, "cuda", "big.cubin", 5000, 400)
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "1000")
    assert evict(keep=big) == []
    assert big.exists()


def test_zero_means_no_bound(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [entry(cache, "bundles", f"e{i}", 1 << 20, 100 + i) for i in range(3)]
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "0")
    assert evict() == []
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "1")
    assert evict() == paths[::-1]  # oldest first


def test_an_entry_in_use_survives_eviction(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    used = entry(cache, "bundles", "used", 1000, 400)
    other = entry(cache, "bundles", "other", 1000, 300)
    lock = hold(used)
    assert lock is not None
    os.utime(used, (time.time() - 500,) * 2)  # still the least recently used
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "1")
    assert evict() == [other]
    assert (used / "data").read_bytes() == b"x" * 1000
    lock.release()
    assert evict() == [used]


def test_a_held_bundle_survives_another_bundles_eviction(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "1")
    first = read_bundle(write(tmp_path / "a.tar"))  # a miss
    second = read_bundle(write(tmp_path / "b.tar", name="other"))  # evicts all it can
    assert first.library.read_bytes() == LIB and second.library.read_bytes() == LIB
    again = read_bundle(first.source)  # a hit holds it as a miss does
    root = first.root
    del first
    read_bundle(write(tmp_path / "c.tar", name="third"))
    assert again.library.read_bytes() == LIB
    del again  # released: the next new entry evicts it
    read_bundle(write(tmp_path / "d.tar", name="fourth"))
    assert not root.exists()


def test_a_reader_that_loses_the_race_extracts_again(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []

    def rival_evictor(keep: Path | None = None) -> list[Path]:
        """Another process's evictor, taking our extraction before we hold it (once)."""
        calls.append(keep)  # type: ignore[arg-type]
        return [keep] if len(calls) == 1 and keep is not None and remove(keep) else []

    monkeypatch.setattr(bundle_mod, "evict", rival_evictor)
    contents = read_bundle(write(tmp_path / "m.tar"))
    assert len(calls) == 2  # extracted twice
    assert contents.library.read_bytes() == LIB


def test_a_lock_taken_on_an_entry_being_removed_is_refused(cache: Path) -> None:
    """hold() opened the lock file, then waited while an evictor moved the entry away and
    another reader extracted it again: the lock held is on the old one's file."""
    path = entry(cache, "bundles", "e", 10, 100)
    fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the evictor's lock
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(hold(path)))
    reader.start()
    time.sleep(0.2)  # the reader is blocked in flock by now
    os.rename(path, cache / "bundles" / ".gone")
    entry(cache, "bundles", "e", 10, 100)  # and another process extracted it again
    (path / LOCK_NAME).touch()
    os.close(fd)
    reader.join(5)
    assert got == [None]


def test_cli_info_and_clear(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry(cache, "bundles", "b1", 2048, 100)
    entry(cache, "bundles", "b2", 2048, 100)
    entry(cache, "cuda", "k.cubin", 1024, 100)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    out = runner.invoke(main, ["cache", "info"])
    assert out.exit_code == 0, out.output
    lines = {line.split()[1]: line for line in out.output.splitlines() if "│" in line}
    assert "2" in lines["bundles"].split() and "4.0 KiB" in lines["bundles"]
    assert "1.0 KiB" in lines["cuda"] and "5.0 KiB" in lines["total"]
    assert "2.0 GiB" in out.output and str(cache / "bundles") in out.output

    out = runner.invoke(main, ["cache", "clear", "--area", "cuda"])
    assert out.exit_code == 0 and "removed 1 " in out.output
    assert [(a.area, a.entries) for a in usage()] == [("bundles", 2), ("cuda", 0)]
    lock = hold(cache / "bundles" / "b1")
    (cache / ".trash" / "b9.x" / "b9").mkdir(parents=True)  # a killed evictor's leftover
    out = runner.invoke(main, ["cache", "clear"])
    assert out.exit_code == 0 and "removed 1 " in out.output and "1 entries are in use" \
        in out.output
    assert lock is not None and [(a.area, a.entries) for a in usage()] == [("bundles", 1),
                                                                           ("cuda", 0)]
    assert not any((cache / ".trash").iterdir())

    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "lots")
    out = runner.invoke(main, ["cache", "info"])
    assert out.exit_code == 2 and "DEEPC_CACHE_MAX_BYTES" in out.output



def test_rpc_jobs_run_unbounded(tmp_path: Path) -> None:
    """A board's jobs clean their own bundles (JobRunner.evict): no second bound there."""
    assert JobRunner(tmp_path, 1.0, emulator=False).env["DEEPC_CACHE_MAX_BYTES"] == "0"


def test_a_bundles_size_is_recorded_when_extracted(tmp_path: Path) -> None:
    """The evictor reads an extraction's size from its lock file, not by walking it."""
    contents = read_bundle(write(tmp_path / "m.tar"))
    files = [p for p in contents.root.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    nbytes = sum(p.stat().st_size for p in files)
    assert (contents.root / LOCK_NAME).read_text() == str(nbytes)
    (contents.root / "grown").write_bytes(b"x" * 1000)  # not walked: the recorded size stands
    assert [a.nbytes for a in usage()] == [nbytes, 0]


def test_cubins_are_entries_touched_on_a_hit_and_bounded(cache: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from deepc.backends.cuda import build
    from deepc.target import load_target

    nvcc = tmp_path / "nvcc"  # writes its -o file and counts its runs
    nvcc.write_text('#!/bin/sh\necho run >> "$0.runs"\nwhile [ "$1" != -o ]; do shift; done\n'
                    'echo cubin > "$2"\n')
    nvcc.chmod(0o755)
    monkeypatch.setattr(build, "nvcc_path", lambda target: str(nvcc))
    old = entry(cache, "cuda", "old.cubin", 1000, 400)
    monkeypatch.setenv("DEEPC_CACHE_MAX_BYTES", "100")
    target = load_target("cuda-sm90")
    assert build.build_cubin("k", target) == b"cubin\n"
    assert not old.exists()  # the write evicted the least recently used
    (cubin,) = (cache / "cuda").iterdir()
    os.utime(cubin, (time.time() - 400,) * 2)
    assert build.build_cubin("k", target) == b"cubin\n"
    assert time.time() - cubin.stat().st_mtime < 60  # a hit marks it used
    assert nvcc.with_suffix(".runs").read_text() == "run\n"  # built once

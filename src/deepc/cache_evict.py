"""The deepc cache's bound: entries in use held by a shared lock, the least recently used
removed first once `DEEPC_CACHE_MAX_BYTES` is exceeded.

An entry is one directory or file directly below an area (`bundles/<digest>`,
`cuda/<key>.cubin`). Recency is the entry's mtime, touched on every use. A directory entry
in use holds a shared flock on its `.in-use` file; the evictor takes that lock exclusively
without waiting and passes over an entry it cannot get, so nothing a running process has
loaded disappears. Removal renames the entry into `.trash/` (atomic: a reader sees the whole
entry or none) and deletes it there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

from deepc.cache import cache_dir
from deepc.errors import InputError

AREAS = ("bundles", "cuda")
ENV = "DEEPC_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 2 << 30
LOCK_NAME = ".in-use"
TRASH = ".trash"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def max_bytes() -> int:
    """The bound from $DEEPC_CACHE_MAX_BYTES (bytes, or with a K/M/G/T suffix); 0 = none."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", text.upper())
    if match is None:
        raise InputError(f"{ENV}={text!r} is not a size: give bytes or a number with K, M, G"
                         " or T (e.g. 500M, 2G), or 0 for no bound")
    return int(float(match[1]) * _UNITS[match[2]])


class EntryLock:
    """A shared hold on a directory entry: while it lives, no evictor removes the entry."""

    def __init__(self, fd: int):
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._finalizer()


def hold(entry: Path) -> EntryLock | None:
    """Hold `entry` in use and mark it recently used; None if it is absent or was removed
    while we waited for the lock (the caller makes it again)."""
    lock = entry / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o666)
    except (FileNotFoundError, NotADirectoryError):
        return None
    held = EntryLock(fd)
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while an evictor moves the entry away
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(lock))
        os.utime(entry)
    except FileNotFoundError:
        same = False
    if not same:  # our lock file went to the trash with the entry
        held.release()
        return None
    return held


def touch(entry: Path) -> None:
    """Mark a file entry recently used (it may have been evicted just now: no matter)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(entry)


@dataclass(frozen=True)
class Entry:
    path: str
    nbytes: int
    used: float  # mtime


def _walk_size(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def record_size(entry: Path) -> None:
    """Write a new directory entry's size into its lock file: the evictor reads it there
    instead of walking every entry after every write."""
    (entry / LOCK_NAME).write_text(str(_walk_size(entry)))


def _size(entry: os.DirEntry[str]) -> int:
    """The entry's bytes: its recorded size (plain os calls: this runs for every entry after
    every write)."""
    if not entry.is_dir(follow_symlinks=False):
        return entry.stat(follow_symlinks=False).st_size
    with contextlib.suppress(OSError, ValueError):
        fd = os.open(os.path.join(entry.path, LOCK_NAME), os.O_RDONLY)
        try:
            return int(os.read(fd, 32))
        finally:
            os.close(fd)
    return _walk_size(Path(entry.path))  # made before sizes were recorded


def entries(area: str) -> list[Entry]:
    """The entries of one area; temporaries being written (dot names) are not entries."""
    found = []
    with os.scandir(cache_dir(area)) as listing:
        for item in listing:
            if item.name.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError):  # removed by another process meanwhile
                found.append(Entry(item.path, _size(item),
                                   item.stat(follow_symlinks=False).st_mtime))
    return found


def remove(path: Path) -> bool:
    """Move an entry to the trash and delete it there; False if it is in use (or gone)."""
    trash = cache_dir(TRASH)
    fd = None
    if path.is_dir():
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDONLY | os.O_CREAT, 0o666)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
    try:
        grave = Path(tempfile.mkdtemp(dir=trash, prefix=f"{path.name}."))
        try:
            os.rename(path, grave / path.name)
        except FileNotFoundError:
            shutil.rmtree(grave, ignore_errors=True)
            return False
    finally:
        if fd is not None:
            os.close(fd)
    shutil.rmtree(grave, ignore_errors=True)
    return True


def evict(keep: Path | None = None) -> list[Path]:
    """Remove least recently used entries of all areas until they fit the bound; never
    `keep` (the entry just written) nor an entry in use. Returns what was removed."""
    bound = max_bytes()
    if bound == 0:
        return []
    found = [e for area in AREAS for e in entries(area)]
    total = sum(e.nbytes for e in found)
    removed = []
    for entry in sorted(found, key=lambda e: e.used):
        if total <= bound:
            break
        if entry.path != str(keep) and remove(Path(entry.path)):
            total -= entry.nbytes
            removed.append(Path(entry.path))
    return removed


@dataclass(frozen=True)
class AreaUsage:
    area: str
    path: Path
    entries: int
    nbytes: int


def usage() -> list[AreaUsage]:
    """Each bounded area's entry count and bytes."""
    out = []
    for area in AREAS:
        found = entries(area)
        out.append(AreaUsage(area, cache_dir(area), len(found), sum(e.nbytes for e in found)))
    return out


def clear(areas: tuple[str, ...] = AREAS) -> tuple[int, int]:
    """Remove every entry of `areas` not in use; returns (removed, kept because in use)."""
    removed = kept = 0
    for grave in cache_dir(TRASH).iterdir():  # left by a process killed while deleting
        shutil.rmtree(grave, ignore_errors=True)
    for area in areas:
        for entry in entries(area):
            if remove(Path(entry.path)):
                removed += 1
            else:
                kept += 1
    return removed, kept

"""The bundle format: a compiled model's library, weights, C header and manifest in one tar.

```
manifest.json           format and deepc versions, target, inputs/outputs, kernels, plan,
                        parameter index, workspace size, sha256 of every other file
lib/model.so            the model: `deepc_run` plus the kernels and the thread pool
params.bin              the weights, every tensor on a 64-byte boundary
include/deepc_model.h   the C interface (render_header)
...                     extra files, listed and checksummed like the rest
```
`write_bundle` writes one atomically; `read_bundle` extracts one into the cache, checking it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from deepc.cache import atomic_directory, atomic_output, cache_dir
from deepc.cache_evict import LOCK_NAME, EntryLock, evict, hold, record_size
from deepc.errors import BundleError
from deepc.ir.types import DTYPES, itemsize
from deepc.runtime.header import render_header
from deepc.runtime.memory import ALIGN

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LIBRARY = "lib/model.so"
PARAMS = "params.bin"
HEADER = "include/deepc_model.h"
RESERVED_FILES = (MANIFEST, LIBRARY, PARAMS, HEADER)
BIN_DIR = "bin/"  # executables (the prebuilt runner): mode 0755 in the tar and once extracted
# manifest keys write_bundle sets itself; `extra` may not override them
RESERVED_KEYS = frozenset({
    "format_version", "deepc_version", "created", "name", "target", "inputs", "outputs",
    "workspace_bytes", "params", "library", "header", "entry", "kernels", "plan", "files",
})
ENTRY = "deepc_run"

FileData = bytes | bytearray | memoryview | str | Path


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the manifest records it."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPES or any(d < 0 for d in self.shape):
            raise ValueError(f"bad tensor spec {self.name!r}: {self.dtype}{list(self.shape)}")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * itemsize(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def of(value: TensorSpec | Mapping[str, Any]) -> TensorSpec:
        if isinstance(value, TensorSpec):
            return value
        return TensorSpec(str(value["name"]), tuple(value["shape"]), str(value["dtype"]))

    def __str__(self) -> str:
        return f"{self.name}: {self.dtype}[{'x'.join(map(str, self.shape))}]"


@dataclass(frozen=True)
class ParamsBlob:
    """Laid-out weights: the bytes of params.bin and name -> {offset, nbytes, shape, dtype}."""

    data: bytes | bytearray | memoryview
    index: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        for name, entry in self.index.items():
            offset, nbytes = int(entry["offset"]), int(entry["nbytes"])
            if offset % ALIGN or offset < 0 or offset + nbytes > len(self.data):
                raise ValueError(f"parameter {name!r} at offset {offset} (+{nbytes} bytes) is not"
                                 f" {ALIGN}-byte aligned inside the {len(self.data)}-byte blob")


def layout_params(arrays: Mapping[str, np.ndarray]) -> ParamsBlob:
    """Place each array on the next 64-byte boundary, in the given order."""
    index: dict[str, dict[str, Any]] = {}
    pos = 0
    for name, array in arrays.items():
        index[name] = {"offset": pos, "nbytes": int(array.nbytes), "shape": list(array.shape),
                       "dtype": array.dtype.name}
        pos += -(-max(int(array.nbytes), 1) // ALIGN) * ALIGN
    data = bytearray(pos)
    for name, array in arrays.items():
        start = index[name]["offset"]
        data[start:start + array.nbytes] = np.ascontiguousarray(array).tobytes()
    return ParamsBlob(data, index)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if isinstance(value, np.ndarray | tuple | set | frozenset):
        return list(value.tolist() if isinstance(value, np.ndarray) else value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot go into manifest.json")


def _file_bytes(data: FileData) -> bytes | bytearray | memoryview:
    if isinstance(data, Path):
        return data.read_bytes()
    return data.encode() if isinstance(data, str) else data


def _check_member_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or str(path) != name:
        raise ValueError(f"bad bundle file name {name!r}: use a plain relative path like"
                         " 'docs/README.txt'")
    return name


def member_mode(member: str) -> int:
    """The mode a member gets in the tar: 0755 for the executables under bin/, else 0644."""
    return 0o755 if member.startswith(BIN_DIR) else 0o644


def _created() -> tuple[int, str]:
    """Seconds and ISO text of the creation time; SOURCE_DATE_EPOCH pins it (reproducible)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return seconds, datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def write_bundle(path: str | os.PathLike[str], *, library: Path | bytes,
                 params: Mapping[str, np.ndarray] | ParamsBlob,
                 inputs: Sequence[TensorSpec | Mapping[str, Any]],
                 outputs: Sequence[TensorSpec | Mapping[str, Any]],
                 target: Any, workspace_bytes: int, name: str = "model",
                 kernels: Sequence[Any] = (), plan: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None, header: str | None = None,
                 extra_files: Mapping[str, FileData] | None = None,
                 library_member: str = LIBRARY) -> Path:
    """Write a bundle to `path` atomically and return the path.

    `target` is a Target (or its `to_dict()`); `header` defaults to `render_header` of the
    manifest; `extra` adds manifest keys; `extra_files` maps archive paths to bytes, text or a
    file to copy. If anything fails, no file (not even a partial one) is left behind.
    """
    out = Path(path)
    blob = params if isinstance(params, ParamsBlob) else layout_params(params)
    blob.check()
    ins, outs = [TensorSpec.of(t) for t in inputs], [TensorSpec.of(t) for t in outputs]
    for role, specs in (("input", ins), ("output", outs)):
        names = [t.name for t in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"{role} names repeat: {names}")
    clash = sorted(RESERVED_KEYS & set(extra or {}))
    if clash:
        raise ValueError(f"extra manifest keys {clash} are set by write_bundle itself")
    seconds, created = _created()
    from deepc.version import __version__

    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "deepc_version": __version__, "created": created,
        "name": name, "target": target.to_dict() if hasattr(target, "to_dict") else dict(target),
        "entry": ENTRY, "library": library_member, "header": HEADER,
        "inputs": [t.to_dict() for t in ins], "outputs": [t.to_dict() for t in outs],
        "workspace_bytes": int(workspace_bytes),
        "params": {"file": PARAMS, "bytes": len(blob.data), "align": ALIGN,
                   "tensors": blob.index},
        "kernels": list(kernels), "plan": dict(plan or {}), **(extra or {}),
    }
    files: dict[str, FileData] = {
        library_member: library if isinstance(library, bytes) else Path(library),
        PARAMS: blob.data,
        HEADER: header if header is not None else render_header(manifest),
    }
    for member, data in (extra_files or {}).items():
        if _check_member_name(member) in RESERVED_FILES:
            raise ValueError(f"extra file {member!r} would replace the bundle's own {member}")
        files[member] = data
    contents = {member: _file_bytes(data) for member, data in files.items()}
    manifest["files"] = {m: hashlib.sha256(data).hexdigest() for m, data in contents.items()}
    text = json.dumps(manifest, indent=2, default=_json_default).encode() + b"\n"
    with atomic_output(out) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in [(MANIFEST, text), *contents.items()]:
            info = tarfile.TarInfo(member)
            info.size, info.mtime = len(data), seconds
            info.mode = member_mode(member)
            tar.addfile(info, io.BytesIO(data))
    return out


def _sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class BundleContents:
    """A checked bundle extracted under `root` (in the cache), with its manifest."""

    source: Path
    root: Path
    manifest: dict[str, Any]
    sha256: str
    # keeps the cache entry from eviction while this object lives
    lock: EntryLock | None = field(default=None, repr=False, compare=False)

    def file(self, member: str) -> Path:
        return self.root / member

    @property
    def library(self) -> Path:
        return self.file(self.manifest.get("library", LIBRARY))

    @property
    def params_path(self) -> Path:
        return self.file(self.manifest["params"]["file"])

    @property
    def header_path(self) -> Path:
        return self.file(self.manifest.get("header", HEADER))

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.of(t) for t in self.manifest["inputs"])

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.of(t) for t in self.manifest["outputs"])

    @property
    def target(self) -> dict[str, Any]:
        return self.manifest["target"]

    @property
    def triple(self) -> str | None:
        return self.target.get("isa", {}).get("triple")

    @property
    def workspace_bytes(self) -> int:
        return int(self.manifest["workspace_bytes"])

    @property
    def params_bytes(self) -> int:
        return int(self.manifest["params"]["bytes"])


def _check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: manifest.json is not a JSON object — the bundle is"
                          " corrupted; recompile it")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        from deepc.version import __version__

        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise BundleError(
            f"{where}: bundle format version {version!r} is "
            f"{'newer than' if newer else 'unknown to'} this deepc ({__version__}, which reads"
            f" version {FORMAT_VERSION}) — {'upgrade deepc or ' if newer else ''}recompile the"
            " model with this deepc")
    try:
        for spec in (*manifest["inputs"], *manifest["outputs"]):
            TensorSpec.of(spec)
        if int(manifest["workspace_bytes"]) < 0 or int(manifest["params"]["bytes"]) < 0:
            raise ValueError("negative sizes")
        files = manifest["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise TypeError("files is not a table of checksums")
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{where}: manifest.json is incomplete ({type(e).__name__}: {e}) —"
                          " the bundle is corrupted or was modified; recompile it") from e
    return manifest


def _mismatch(where: str, member: str) -> BundleError:
    return BundleError(f"{where}: {member} does not match its checksum in manifest.json: the"
                       " bundle is corrupted or was modified; recompile it")


def _verify(digests: Mapping[str, str], manifest: dict[str, Any], where: str) -> None:
    """Every listed file present with its checksum, nothing unlisted besides the manifest."""
    listed = manifest["files"]
    for member in listed:
        if member not in digests:
            raise BundleError(f"{where}: {member} is listed in manifest.json but missing from"
                              " the bundle: the bundle is corrupted or was modified; recompile it")
        if digests[member] != listed[member]:
            raise _mismatch(where, member)
    unlisted = sorted(set(digests) - set(listed) - {MANIFEST})
    if unlisted:
        raise BundleError(f"{where}: {', '.join(unlisted)} not listed in manifest.json: the"
                          " bundle was modified; recompile it")


def _unpack(tar: tarfile.TarFile, dest: Path, where: str) -> dict[str, str]:
    """Write the regular files under dest, refusing anything else; returns their sha256."""
    digests: dict[str, str] = {}
    for info in tar:
        if info.isdir():
            continue
        try:
            member = _check_member_name(info.name)
        except ValueError:
            member = ""
        if not info.isfile() or not member or member in digests:
            raise BundleError(f"{where}: unexpected entry {info.name!r} — not a bundle deepc"
                              " wrote; recompile it")
        target = dest / member
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(info)
        assert src is not None  # a regular file always has data
        digest = hashlib.sha256()
        with target.open("wb") as f:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if member.startswith(BIN_DIR) and info.mode & 0o100:
            target.chmod(0o755)
        digests[member] = digest.hexdigest()
    return digests


def _extract(tar_path: Path, dest: Path, where: str) -> dict[str, Any]:
    """Unpack a bundle under dest, check it against its manifest, return the manifest."""
    if not tarfile.is_tarfile(tar_path):
        raise BundleError(f"{where} is not a deepc bundle: not a tar archive — pass the .tar"
                          " that `deepc compile -o` wrote")
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            digests = _unpack(tar, dest, where)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{where} is damaged or truncated ({e}) — recompile it") from e
    if MANIFEST not in digests:
        raise BundleError(f"{where} has no manifest.json: it is not a deepc bundle, or it is"
                          " truncated — recompile it")
    manifest = _load_manifest(dest, where)
    _verify(digests, manifest, where)
    return manifest


def _load_manifest(root: Path, where: str) -> dict[str, Any]:
    try:
        return _check_manifest(json.loads((root / MANIFEST).read_text()), where)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{where}: manifest.json is not valid JSON ({e}) — the bundle is"
                          " corrupted; recompile it") from e


def _cached(root: Path, where: str) -> dict[str, Any] | None:
    """The manifest of an earlier extraction whose files still match it, else None."""
    if not (root / MANIFEST).is_file():
        return None
    try:
        manifest = _load_manifest(root, where)
        digests = {str(p.relative_to(root)): _sha256_file(p)
                   for p in root.rglob("*") if p.is_file() and p != root / LOCK_NAME}
        _verify(digests, manifest, where)
    except (BundleError, OSError):
        return None
    return manifest


def read_bundle(path: str | os.PathLike[str]) -> BundleContents:
    """Extract a bundle into the cache (keyed by its sha256) and check every file's checksum;
    while the result lives, its cache entry is held in use (never evicted)."""
    source = Path(path)
    where = str(source)
    if not source.is_file():
        raise BundleError(f"{where}: no such bundle file — check the path (`deepc compile -o`"
                          " writes one)")
    digest = _sha256_file(source)
    root = cache_dir("bundles") / digest[:32]
    for _ in range(3):  # an evictor may take a fresh extraction before we hold it
        if held := hold(root):
            if (manifest := _cached(root, where)) is not None:
                return BundleContents(source, root, manifest, digest, held)
            held.release()  # a stale or tampered extraction of the same tar: start over
            shutil.rmtree(root, ignore_errors=True)
        with atomic_directory(root) as tmp:
            manifest = _extract(source, tmp, where)
            record_size(tmp)
        evict(keep=root)
        if held := hold(root):
            return BundleContents(source, root, manifest, digest, held)
    raise BundleError(f"{where}: its extraction was evicted from the cache three times before"
                      " it could be used — raise DEEPC_CACHE_MAX_BYTES")

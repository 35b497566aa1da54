"""The bundle format: round trip, checksums, refusal of damaged bundles, atomic writes, header."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepc.errors import BundleError
from deepc.runtime import bundle as bundle_mod
from deepc.runtime.bundle import (
    HEADER,
    LIBRARY,
    MANIFEST,
    PARAMS,
    ParamsBlob,
    TensorSpec,
    layout_params,
    read_bundle,
    render_header,
    write_bundle,
)
from deepc.target import load_target
from tests.runtime.conftest import cc

LIB = b"\x7fELF not really a library, the bundle does not look inside"


def params() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"w": rng.standard_normal((3, 5)).astype(np.float32),
            "b": np.arange(7, dtype=np.int64), "empty": np.zeros((0,), np.float32),
            "s": np.array(2.5, np.float64)}


def write(path: Path, **overrides: Any) -> Path:
    args: dict[str, Any] = {
        "library": LIB, "params": params(), "target": load_target("x86_64"),
        "inputs": [TensorSpec("x", (2, 3), "float32")],
        "outputs": [{"name": "y", "shape": [2, 3], "dtype": "float32"}],
        "workspace_bytes": 256, "name": "tiny", "kernels": [{"name": "k0"}],
        "plan": {"calls": ["k0"]}, "extra": {"notes": "hi"},
        "extra_files": {"docs/README.txt": "read me", "model.onnx": b"onnx bytes"},
    }
    return write_bundle(path, **{**args, **overrides})


def test_layout_params_aligns_every_tensor() -> None:
    blob = layout_params(params())
    for name, array in params().items():
        entry = blob.index[name]
        assert entry["offset"] % 64 == 0
        assert entry["shape"] == list(array.shape) and entry["dtype"] == array.dtype.name
        data = bytes(blob.data[entry["offset"]:entry["offset"] + entry["nbytes"]])
        np.testing.assert_array_equal(np.frombuffer(data, array.dtype).reshape(array.shape),
                                      array)


def test_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tar")
    with tarfile.open(path) as tar:
        assert tar.getnames()[0] == MANIFEST  # streaming readers meet the manifest first
    b = read_bundle(path)
    m = b.manifest
    assert m["format_version"] == bundle_mod.FORMAT_VERSION and m["deepc_version"]
    assert m["created"].endswith("Z") and m["name"] == "tiny" and m["notes"] == "hi"
    assert m["target"]["isa"]["triple"] == "x86_64-unknown-linux-gnu"
    assert b.inputs == (TensorSpec("x", (2, 3), "float32"),)
    assert b.outputs == (TensorSpec("y", (2, 3), "float32"),)
    assert b.workspace_bytes == 256 and m["kernels"] == [{"name": "k0"}]
    assert set(m["files"]) == {LIBRARY, PARAMS, HEADER, "docs/README.txt", "model.onnx"}
    assert b.library.read_bytes() == LIB
    assert b.file("docs/README.txt").read_text() == "read me"
    assert b.header_path.read_text() == render_header(m)
    raw = b.params_path.read_bytes()
    assert len(raw) == b.params_bytes
    for name, array in params().items():
        entry = m["params"]["tensors"][name]
        got = np.frombuffer(raw, array.dtype, count=array.size, offset=entry["offset"])
        np.testing.assert_array_equal(got.reshape(array.shape), array)


def test_params_blob_is_taken_as_laid_out(tmp_path: Path) -> None:
    blob = ParamsBlob(bytes(range(128)), {"a": {"offset": 64, "nbytes": 64, "shape": [16],
                                                "dtype": "float32"}})
    b = read_bundle(write(tmp_path / "m.tar", params=blob))
    assert b.params_path.read_bytes() == bytes(range(128))
    with pytest.raises(ValueError, match="not 64-byte aligned"):
        write(tmp_path / "bad.tar", params=ParamsBlob(bytes(128), {"a": {"offset": 4,
                                                                         "nbytes": 4}}))


def test_executables_under_bin_get_mode_0755(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tar", extra_files={"bin/run_model": b"#!runner",
                                                  "docs/README.txt": "read me"})
    with tarfile.open(path) as tar:
        modes = {info.name: info.mode for info in tar}
    assert modes.pop("bin/run_model") == 0o755
    assert set(modes.values()) == {0o644}, modes  # the library and params included
    extracted = read_bundle(path)
    assert extracted.file("bin/run_model").stat().st_mode & 0o777 == 0o755
    assert not extracted.file("docs/README.txt").stat().st_mode & 0o111


def test_read_reuses_and_repairs_the_extraction(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tar")
    first = read_bundle(path)
    assert read_bundle(path).root == first.root
    first.library.write_bytes(b"edited in the cache")  # the tar itself is intact
    assert read_bundle(path).library.read_bytes() == LIB


def _flip_byte(path: Path, member: str) -> None:
    with tarfile.open(path) as tar:
        offset = tar.getmember(member).offset_data
    data = bytearray(path.read_bytes())
    data[offset + 3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", [LIBRARY, PARAMS, HEADER, "docs/README.txt"])
def test_corrupted_file_is_named(tmp_path: Path, member: str) -> None:
    path = write(tmp_path / "m.tar")
    _flip_byte(path, member)
    with pytest.raises(BundleError, match=f"{member} does not match its checksum in"
                                          " manifest.json: the bundle is corrupted"):
        read_bundle(path)


def _rewrite(src: Path, dst: Path, edit: Any) -> Path:
    """Copy a bundle member by member; edit(name, data) returns new data, or None to drop it."""
    with tarfile.open(src) as tar, tarfile.open(dst, "w") as out:
        for info in tar.getmembers():
            data = edit(info.name, tar.extractfile(info).read())  # type: ignore[union-attr]
            if data is not None:
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
    return dst


def _manifest_edit(**changes: Any) -> Any:
    def edit(name: str, data: bytes) -> bytes:
        if name != MANIFEST:
            return data
        return json.dumps({**json.loads(data), **changes}).encode()
    return edit


@pytest.mark.parametrize(("edit", "message"), [
    (lambda n, d: None if n == MANIFEST else d, "has no manifest.json"),
    (lambda n, d: None if n == LIBRARY else d, "lib/model.so is listed in manifest.json but"
                                               " missing"),
    (lambda n, d: b"{not json" if n == MANIFEST else d, "manifest.json is not valid JSON"),
    (_manifest_edit(format_version=99), "format version 99 is newer than this deepc"),
    (_manifest_edit(format_version="x"), "format version 'x' is unknown to this deepc"),
    (_manifest_edit(inputs=[{"name": "x"}]), "manifest.json is incomplete"),
], ids=["no-manifest", "missing-file", "bad-json", "newer-format", "unknown-format",
        "incomplete"])
def test_malformed_bundles_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    bad = _rewrite(write(tmp_path / "m.tar"), tmp_path / "bad.tar", edit)
    with pytest.raises(BundleError, match=message):
        read_bundle(bad)


def test_unlisted_and_unsafe_members_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "m.tar")
    for name, message in [("smuggled.txt", "smuggled.txt not listed"),
                          ("../evil", "unexpected entry '../evil'")]:
        bad = tmp_path / "bad.tar"
        bad.write_bytes(path.read_bytes())
        with tarfile.open(bad, "a") as tar:
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
        with pytest.raises(BundleError, match=message):
            read_bundle(bad)
    assert not (tmp_path.parent / "evil").exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a tar archive"), (b"hello, not a tar" * 64, "not a tar archive"),
])
def test_not_a_bundle(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m.tar"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        read_bundle(path)
    with pytest.raises(BundleError, match="no such bundle file"):
        read_bundle(tmp_path / "absent.tar")


@pytest.mark.parametrize("cut", [10, 700], ids=["in-params", "in-next-header"])
def test_truncated_bundle(tmp_path: Path, cut: int) -> None:
    path = write(tmp_path / "m.tar")
    with tarfile.open(path) as tar:
        end = tar.getmember(PARAMS).offset_data + cut
    path.write_bytes(path.read_bytes()[:end])
    with pytest.raises(BundleError, match=r"damaged or truncated|missing from the bundle"):
        read_bundle(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "m.tar")
    before = path.read_bytes()

    def failing_addfile(self: tarfile.TarFile, info: tarfile.TarInfo, fileobj: Any = None) -> None:
        if info.name == PARAMS:  # fail halfway through the archive
            raise OSError(28, "No space left on device")
        original(self, info, fileobj)

    original = tarfile.TarFile.addfile
    monkeypatch.setattr(tarfile.TarFile, "addfile", failing_addfile)
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path / "m.tar")
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path / "new.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tar"]  # no temporaries, no new.tar
    assert path.read_bytes() == before  # the earlier bundle is untouched


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="would replace the bundle's own"):
        write(tmp_path / "m.tar", extra_files={LIBRARY: b""})
    with pytest.raises(ValueError, match="bad bundle file name"):
        write(tmp_path / "m.tar", extra_files={"../x": b""})
    with pytest.raises(ValueError, match="set by write_bundle itself"):
        write(tmp_path / "m.tar", extra={"files": {}})
    with pytest.raises(ValueError, match="input names repeat"):
        write(tmp_path / "m.tar", inputs=[TensorSpec("x", (1,), "float32")] * 2)
    assert list(tmp_path.iterdir()) == []


HEADER_PROGRAM = r"""
#include <assert.h>
#include <stdio.h>
#include "deepc_model.h"

static_assert(DEEPC_NUM_INPUTS == 3 && DEEPC_NUM_OUTPUTS == 1, "counts");
static_assert(DEEPC_INPUT0_SIZE == 6 && DEEPC_INPUT0_BYTES == 24, "input 0 sizes");
static_assert(DEEPC_INPUT1_RANK == 0 && DEEPC_INPUT1_SIZE == 1, "scalar input");
static_assert(DEEPC_OUTPUT0_BYTES == 8 * 4 * 5, "output bytes");
static_assert(DEEPC_WORKSPACE_BYTES == 4096 && DEEPC_PARAMS_BYTES == 128, "arena sizes");
static_assert(DEEPC_INPUT_INDEX_IMAGE_0 == 0 && DEEPC_OUTPUT_INDEX_SCORES == 0, "indices");

int main(void) {
    const char *names[] = DEEPC_INPUT_NAMES;
    const long sizes[] = DEEPC_INPUT_SIZES;
    const int shape[] = DEEPC_OUTPUT0_SHAPE;
    DEEPC_INPUT0_CTYPE x = 1.5f;
    DEEPC_INPUT2_CTYPE flag = 1;
    DEEPC_OUTPUT0_CTYPE y = 2;
    for (int i = 0; i < DEEPC_NUM_INPUTS; i++) printf("%s|%ld\n", names[i], sizes[i]);
    printf("%d %d %s %s %g %d %g\n", shape[0], shape[1], DEEPC_OUTPUT0_DTYPE,
           DEEPC_TARGET_TRIPLE, x, flag, y);
    (void)&deepc_run;
    (void)&deepc_set_num_threads;
    return 0;
}
"""


def test_header_compiles_and_describes_the_model(tmp_path: Path, host: Any) -> None:
    manifest = {
        "name": 'q"uote', "deepc_version": "0.1.0", "target": load_target("x86_64").to_dict(),
        "inputs": [{"name": "image:0", "shape": [2, 3], "dtype": "float32"},
                   {"name": "temp\u00e9rature??=", "shape": [], "dtype": "float16"},
                   {"name": "2 flags", "shape": [4], "dtype": "bool"}],
        "outputs": [{"name": "scores", "shape": [4, 5], "dtype": "float64"}],
        "workspace_bytes": 4096, "params": {"bytes": 128, "align": 64},
    }
    (tmp_path / "deepc_model.h").write_text(render_header(manifest))
    (tmp_path / "main.c").write_text(HEADER_PROGRAM)
    cc("-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tmp_path}",
       tmp_path / "main.c", "-c", "-o", tmp_path / "main.o")
    # link against a stand-in so the declared entry points resolve
    (tmp_path / "stub.c").write_text(
        "#include <stdint.h>\nint32_t deepc_run(void *const *i, void *const *o, const void *p,"
        " void *w) { (void)i; (void)o; (void)p; (void)w; return 0; }\n"
        "void deepc_set_num_threads(int32_t n) { (void)n; }\n")
    cc(tmp_path / "main.o", tmp_path / "stub.c", "-o", tmp_path / "main")
    out = subprocess.run([str(tmp_path / "main")], capture_output=True, check=True).stdout
    assert out.decode().splitlines() == [
        "image:0|6", "temp\u00e9rature??=|1", "2 flags|4",
        "4 5 float64 x86_64-unknown-linux-gnu 1.5 1 2",
    ]

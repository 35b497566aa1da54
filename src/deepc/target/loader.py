"""Finds target files by name, follows `inherit` chains and host detection, returns a Target."""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Any

from deepc.errors import TargetError
from deepc.target import host
from deepc.target.spec import Target
from deepc.target.validate import check_table, fail

# the repository's top-level targets/ (a source checkout or an editable install)
REPO_TARGETS = Path(__file__).resolve().parents[3] / "targets"
# the copy a wheel carries (pyproject's hatch force-include puts it there)
PACKAGED_TARGETS = Path(__file__).resolve().parents[1] / "_targets"
# keys that belong to one file: a child never takes its parent's name or description
OWN_KEYS = ("name", "description", "abstract")


def search_dirs() -> list[Path]:
    """Target directories in lookup order: $DEEPC_TARGETS_DIR (os.pathsep-separated) first."""
    env = os.environ.get("DEEPC_TARGETS_DIR", "")
    candidates = [Path(p) for p in env.split(os.pathsep) if p] + [REPO_TARGETS, PACKAGED_TARGETS]
    dirs: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and all(candidate.resolve() != d.resolve() for d in dirs):
            dirs.append(candidate)
    return dirs


def target_files() -> dict[str, Path]:
    """Every target file by name; a directory earlier in the search order shadows later ones."""
    found: dict[str, Path] = {}
    for directory in reversed(search_dirs()):
        found.update((path.stem, path) for path in directory.glob("*.toml"))
    return dict(sorted(found.items()))


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read(path: Path) -> dict[str, Any]:
    """One file's table, checked on its own so an error names the file that holds it."""
    where = _display(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise fail(where, f"cannot read the file ({e.strerror}) — check the path") from e
    except tomllib.TOMLDecodeError as e:
        raise fail(where, f"not valid TOML ({e}) — fix the syntax there") from e
    check_table(data, where)
    if "name" not in data:
        raise fail(where, 'name is required — add name = "..." at the top of the file')
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: tables merge field by field, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _available(files: dict[str, Path]) -> str:
    def concrete(path: Path) -> bool:
        try:
            return not _read(path).get("abstract", False)
        except TargetError:  # a broken file is reported when it is loaded, not here
            return True

    return ", ".join(name for name, path in files.items() if concrete(path))


def _parent_path(ref: str, child: Path, where: str) -> Path:
    """`inherit = ref`: a path relative to the child, a sibling file, or any known target."""
    candidates = [child.parent / ref] if ref.endswith(".toml") or "/" in ref else []
    candidates.append(child.parent / f"{ref}.toml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    files = target_files()
    if ref in files:
        return files[ref]
    raise fail(where, f"inherit = {ref!r} names no target file — use one of: {', '.join(files)}")


def _resolve_chain(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    where, here = _display(path), path.resolve()
    if here in seen:
        cycle = " -> ".join(p.stem for p in (*seen[seen.index(here):], here))
        raise fail(where, f"inherit cycle {cycle} — remove one of these inherit lines")
    data = _read(path)
    if data.get("isa", {}).get("detect"):
        # detection fills the file that asks for it; files inheriting it still override
        data = merge(data, host.detect())
    ref = data.pop("inherit", None)
    if ref is None:
        return data
    base = _resolve_chain(_parent_path(ref, path, where), (*seen, here))
    return merge({k: v for k, v in base.items() if k not in OWN_KEYS}, data)


def load_file(path: Path, expected_name: str | None = None) -> Target:
    """A target file (inheritance and host detection resolved) as a validated Target."""
    where = _display(path)
    data = _resolve_chain(path)
    if expected_name is not None and data["name"] != expected_name:
        raise fail(where, f"name is {data['name']!r} but the file is {path.name}"
                          " — make them match so the target can be found by name")
    if data.pop("abstract", False):
        raise fail(where, f"{data['name']!r} is an abstract base (abstract = true)"
                          " — load a target that inherits it; `deepc targets` lists them")
    return Target.from_dict(data, source=where)


def load_target(spec: str | os.PathLike[str] | Target) -> Target:
    """A target by name (looked up in the target directories) or by path to a .toml file."""
    if isinstance(spec, Target):
        return spec
    text = os.fspath(spec)
    if isinstance(spec, os.PathLike) or text.endswith(".toml") or "/" in text or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise TargetError(f"{text}: no such target file — check the path, or name one of:"
                              f" {_available(target_files())}")
        return load_file(path)
    files = target_files()
    if text not in files:
        close = difflib.get_close_matches(text, list(files), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TargetError(f"unknown target {text!r} — {hint}available: {_available(files)}"
                          " (or pass the path of a .toml file)")
    return load_file(files[text], expected_name=text)


def list_targets() -> list[tuple[str, str]]:
    """(name, description) of every loadable target, sorted by name; abstract bases left out."""
    out = []
    for name, path in target_files().items():
        data = _read(path)
        if not data.get("abstract", False):
            out.append((name, data.get("description", "")))
    return out

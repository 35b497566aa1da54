"""`deepc report`: the page draws every kernel and node, the memory plan and the profile;
it fetches nothing; it opens in headless Chromium without console messages, and its
screenshot is not blank (kept in test-artifacts/ for CI to keep)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

import deepc
from deepc.report.charts import lifetimes
from tests.backends.wasm.conftest import chromium  # finds it, or skips saying how to get it
from tests.report.png import read_png
from tests.test_cli import EXAMPLE, assert_one_line_error, run

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--no-first-run", "--disable-background-networking", "--disable-sync",
                  "--disable-component-update", "--disable-dev-shm-usage",
                  "--enable-logging=stderr", "--v=0")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "tiny_cnn.html"
    code, stdout, err = run("report", str(EXAMPLE), "-o", str(out), "--compare", "onnxruntime",
                            "--runs", "3", "--warmup", "1", "--threads", "1")
    assert code == 0, err
    assert str(out) in stdout
    return out


def test_report_draws_kernels_nodes_memory_and_profile(report: Path) -> None:
    page = report.read_text()
    compiled = deepc.compile(EXAMPLE)
    assert page.count('<g class="kernel"') == len(compiled.kernels)
    assert page.count('<rect class="node"') == sum(len(k.nodes) for k in compiled.kernels)
    for kern in compiled.kernels:
        assert f'data-kernel="{kern.name}"' in page
    assert page.count('<rect class="block"') == len(lifetimes(compiled)) > 0
    profile = re.search(r'<svg[^>]*class="profile".*?</svg>', page, re.S)
    assert profile and profile.group(0).count('<g class="row">') == len(compiled.plan.calls)
    assert "deepc beside onnxruntime" in page and 'class="compare"' in page
    for name in ("fuse", "fold"):  # the passes run, in the passes table
        assert f"<th>{name}</th>" in page
    assert page.count("<details>") == len(compiled.records)
    assert "input:block: added by the passes" in page  # the layout change before the stem
    assert "ONNX Conv node stem/Conv" in page


def test_memory_blocks_rebuild_the_plan() -> None:
    """The chart's blocks are the plan's: blocks live at one call never overlap, and the most
    bytes live at once is the plan's lower bound."""
    compiled = deepc.compile(EXAMPLE)
    blocks = lifetimes(compiled)
    for a in blocks:
        for b in blocks:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
    live = [sum(b.size for b in blocks if b.first <= s <= b.last)
            for s in range(len(compiled.plan.calls))]
    assert max(live) == compiled.plan.lower_bound_bytes
    assert max(b.offset + b.size for b in blocks) <= compiled.plan.workspace_bytes


def test_report_is_self_contained(report: Path) -> None:
    page = report.read_text()
    assert "<script" not in page and "<link" not in page and "@import" not in page
    refs = re.findall(r'(?:src|href)="([^"]*)"', page) + re.findall(r"url\(([^)]*)\)", page)
    assert all(ref.startswith("#") for ref in refs), refs


def screenshot(page: Path, png: Path, size: str = "1280,2000") -> list[str]:
    """Chromium's screenshot of `page`, and the console messages it logged."""
    with tempfile.TemporaryDirectory(prefix="deepc-chromium-") as profile:
        done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               f"--window-size={size}", f"--screenshot={png}",
                               page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=180, check=False)
    assert png.exists(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def distinct_colours(png: Path) -> tuple[int, float]:
    """How many colours the image has, and the fraction of pixels that are not its
    commonest colour (the background)."""
    pixels = read_png(png)[..., :3].reshape(-1, 3)
    packed = pixels[:, 0].astype(np.uint32) << 16 | pixels[:, 1].astype(np.uint32) << 8 \
        | pixels[:, 2]
    _, counts = np.unique(packed, return_counts=True)
    return len(counts), 1 - counts.max() / packed.size


@pytest.mark.toolchain
def test_report_opens_in_chromium_without_errors(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    console = screenshot(report, png)
    assert console == [], console
    colours, drawn = distinct_colours(png)
    assert colours > 50 and drawn > 0.02, (colours, drawn)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(png, ARTIFACTS / "report-tiny_cnn.png")
    shutil.copy(report, ARTIFACTS / "report-tiny_cnn.html")


@pytest.mark.toolchain
def test_the_chromium_checks_catch_a_broken_blank_page(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>notDefined();</script></body></html>")
    png = tmp_path / "bad.png"
    console = screenshot(page, png, "400,300")
    assert any("notDefined" in line for line in console), console
    colours, drawn = distinct_colours(png)
    assert colours == 1 and drawn == 0


def test_report_for_a_target_not_run_here_draws_the_compiled_model(tmp_path: Path) -> None:
    out = tmp_path / "wasm.html"
    code, _, err = run("report", str(EXAMPLE), "--target", "wasm32-simd", "-o", str(out))
    assert code == 0, err
    assert "not timed" in err
    page = out.read_text()
    assert '<g class="kernel"' in page and 'class="memory"' in page and "not timed" in page


def test_report_of_a_missing_model_fails_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, _, err = run("report", str(tmp_path / "nope.onnx"), "-o", str(out))
    assert_one_line_error(code, err, 2, "nope.onnx")
    assert not out.exists()


def test_report_into_a_missing_folder_fails_before_compiling(tmp_path: Path) -> None:
    code, _, err = run("report", str(EXAMPLE), "-o", str(tmp_path / "no" / "r.html"))
    assert_one_line_error(code, err, 2, "does not exist")

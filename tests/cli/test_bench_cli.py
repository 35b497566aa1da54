"""`deepc bench` on this machine: the table, --json and the per-kernel profile (CPU rows here;
CUDA rows, with a launches column, rendered from a recorded profile)."""

from __future__ import annotations

import json

from rich.console import Console

from tests.test_cli import EXAMPLE, run


def test_bench_json_with_profile_matches_onnxruntime() -> None:
    code, out, err = run("bench", str(EXAMPLE), "--threads", "1", "--runs", "3", "--warmup", "1",
                         "--profile", "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["outputs_match"] is True and result["onnxruntime_ms"] > 0
    # at 1 thread the CPU time per run is recorded beside the wall clock
    assert result["deepc_cpu_ms"] > 0 and result["cpu_ratio"] > 0
    kernels = result["profile"]
    assert kernels and abs(sum(k["share"] for k in kernels) - 1.0) < 1e-6
    assert all(k["ms"] > 0 and k["ops"] for k in kernels)


def test_profile_table_shows_cuda_launches() -> None:
    from deepc.bench import BenchResult, Timing
    from deepc.cli_bench import profile_table

    row = {"kernel": "k002_conv_relu", "ops": ["conv", "relu"], "ms": 0.30, "share": 0.6,
           "gflops": 24000.0,
           "stages": [{"ms": 0.03, "note": ""},
                      {"ms": 0.27, "note": "gemm 100352x64x576 tile 128x64x16 simt"}]}
    result = BenchResult("resnet18", 1, Timing(0.5, 0.5, 3))
    result.profile = [row]
    console = Console(width=200, record=True)
    console.print(profile_table(result))
    text = console.export_text()
    assert "launches" in text and "0.030 per-thread" in text and "tile 128x64x16" in text
    cpu = BenchResult("m", 1, Timing(0.5, 0.5, 3))
    cpu.profile = [{k: v for k, v in row.items() if k != "stages"}]
    console = Console(width=200, record=True)
    console.print(profile_table(cpu))
    assert "launches" not in console.export_text()


def test_results_table_shows_cpu_ratio_where_measured() -> None:
    from deepc.bench import BenchResult, Timing
    from deepc.cli_bench import results_table

    def result(name: str, cpu: bool) -> BenchResult:
        r = BenchResult(name, 1, Timing(2.0, 2.2, 3, 1.5 if cpu else None))
        r.peer, r.peer_name = Timing(2.0, 2.0, 3, 2.0 if cpu else None), "onnxruntime"
        return r

    console = Console(width=200, record=True)
    console.print(results_table([result("a", True), result("b", True)], "onnxruntime", "host", 3))
    text = console.export_text()
    assert "cpu ratio" in text and "0.75" in text  # 1.5 ms of CPU over 2.0
    console = Console(width=200, record=True)
    console.print(results_table([result("a", False)], "onnxruntime", "host", 3))
    assert "cpu ratio" not in console.export_text()

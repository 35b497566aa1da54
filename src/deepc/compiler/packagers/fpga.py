"""Packaging for FPGA targets: the HLS sources (kernels and top, the arena header, the
C-simulation testbench, run_hls.tcl), the processing system's host program cross-compiled
static with the target's first installed C compiler (musl through zig, or gcc), and the
resource/latency estimate in the manifest."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from deepc.backends.compilers import CCompiler, choose
from deepc.backends.hls.top import TOP
from deepc.backends.link import run_tool
from deepc.compiler.packagers.common import write_model_bundle
from deepc.compiler.packagers.registry import PACKAGERS

_C = Path(__file__).resolve().parents[2] / "runtime" / "c"
KERNELS, HEADER, TESTBENCH, TCL = ("hls/kernels.cpp", "hls/deepc_top.h", "hls/tb.cpp",
                                   "hls/run_hls.tcl")
HOST_SOURCE, HOST_MAKEFILE, HOST = "host/host.c", "host/Makefile", "bin/host"
HOST_CFLAGS = ("-std=c11", "-O2", "-Wall")


def run_hls_tcl(target: Any, name: str, layout: dict[str, Any]) -> str:
    """vitis_hls -f run_hls.tcl (from hls/): C simulation on the bundle's params.bin and raw
    input files in0.bin... (as the CPU example reads them; outputs out0.bin...), synthesis,
    and IP export for the target's part at its clock."""
    period = round(1000 / target.clock_mhz, 3)
    root = "../../../../.."  # the bundle, seen from <project>/solution1/csim/build
    files = ["params.bin", *(f"in{i}.bin" for i in range(len(layout["inputs"]))),
             *(f"out{i}.bin" for i in range(len(layout["outputs"])))]
    return "\n".join([
        f"# vitis_hls -f run_hls.tcl  ({name} for {target.part} at {target.clock_mhz} MHz)",
        f"open_project -reset {name}_hls", f"set_top {TOP}",
        "add_files kernels.cpp", "add_files -tb tb.cpp -cflags \"-I[pwd]\"",
        "open_solution -reset -flow_target vivado solution1",
        f"set_part {target.part}", f"create_clock -period {period} -name default",
        "# the unrolled float sums may be reassociated into trees (deepc's estimate assumes it)",
        "config_compile -unsafe_math_optimizations",
        f"csim_design -argv {{{' '.join(f'{root}/{f}' for f in files)}}}",
        "csynth_design", "export_design -format ip_catalog", "exit", ""])


def host_makefile(cc: CCompiler) -> str:
    """host/Makefile: the static link is in CC (zig's musl target, or gcc -static)."""
    return (f"CC ?= {cc.make_words(static=True)}\nCFLAGS ?= {' '.join(HOST_CFLAGS)}\n\n"
            "host: host.c ../hls/deepc_top.h\n\t$(CC) $(CFLAGS) -I../hls -o $@ host.c\n")


def build_host(root: Path, target: Any, cc: CCompiler) -> Path:
    """bin/host cross-compiled for the processing system (static: no sysroot needed there)."""
    out = root / HOST
    out.parent.mkdir(parents=True, exist_ok=True)
    run_tool([*cc.static_argv, *HOST_CFLAGS, "-I", str(root / "hls"), "-o", str(out),
              str(root / HOST_SOURCE)], "build the host program bin/host", target)
    return out


@PACKAGERS.register("fpga")
def write_fpga_bundle(compiled: Any, path: Path) -> Path:
    target, report = compiled.target, compiled.module.report
    cc = choose(target)
    files: dict[str, Any] = {
        HEADER: report["header"], TESTBENCH: (_C / "hls_tb.cpp").read_text(),
        TCL: run_hls_tcl(target, compiled.graph.name or "model", report["layout"]),
        HOST_SOURCE: (_C / "fpga_host.c").read_text(), HOST_MAKEFILE: host_makefile(cc)}
    with tempfile.TemporaryDirectory(prefix="deepc-bundle-") as tmp:
        root = Path(tmp)
        for member, text in files.items():
            (root / member).parent.mkdir(parents=True, exist_ok=True)
            (root / member).write_text(text)
        files[HOST] = build_host(root, target, cc)
        extra = {"hls": {"top": TOP, "kernels": KERNELS, "header": HEADER,
                         "testbench": TESTBENCH, "tcl": TCL, **report["layout"]},
                 "host": HOST, "estimate": report["estimate"]}
        return write_model_bundle(compiled, path, library=compiled.module.source.encode(),
                                  extra=extra, extra_files=files, library_member=KERNELS)

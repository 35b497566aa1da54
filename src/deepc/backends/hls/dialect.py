"""The Vitis HLS C++ dialect of the C-style renderer: plain C++ loops whose pragmas come from
the FPGA schedule (pipelined and unrolled loops, partitioned accumulators, BRAM tiles)."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect

HLS = Dialect(
    name="hls",
    prelude="#include <math.h>\n#include <ap_fixed.h>",
    helper_qualifier="static inline",
    restrict="__restrict",
    types={"float16": "half"},
    loop_pragmas={"pipelined": "#pragma HLS PIPELINE II={ii}",
                  "unrolled": "#pragma HLS UNROLL factor={extent}"},
    pragmas_in_body=True,  # Vitis reads a loop's pragmas from the top of its body
    scope_pragmas={"local": "#pragma HLS ARRAY_PARTITION variable={name} complete",
                   # lane i is next updated `size` iterations later: tells Vitis the distance
                   "lanes": "#pragma HLS ARRAY_PARTITION variable={name} complete\n"
                            "#pragma HLS DEPENDENCE variable={name} type=inter distance={size}"
                            " dependent=true",
                   "bram": "#pragma HLS BIND_STORAGE variable={name} type=ram_2p impl=bram\n"
                           "#pragma HLS ARRAY_PARTITION variable={name} cyclic factor={factor}"},
)

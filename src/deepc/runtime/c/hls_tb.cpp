// hls_tb.cpp: the C-simulation testbench of a deepc FPGA bundle (vitis_hls csim, or g++).
//
//   ./csim PARAMS INPUT... OUTPUT...
//
// The same raw files as the CPU example (C order, native byte order, nothing else): params.bin
// and the inputs are copied into the DDR arena, deepc_top runs the model, and the outputs are
// copied out. Exit status: 0 done, 2 bad use.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "deepc_top.h"

static void die(const char *what, const char *path) {
  std::fprintf(stderr, "csim: %s %s\n", what, path);
  std::exit(2);
}

static void load(const char *path, float *to, long floats) {
  FILE *f = std::fopen(path, "rb");
  if (!f) die("cannot open", path);
  std::fseek(f, 0, SEEK_END);
  if (std::ftell(f) != floats * 4) die("has the wrong size:", path);
  std::rewind(f);
  if (std::fread(to, 4, floats, f) != (size_t)floats) die("cannot read", path);
  std::fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 2 + DEEPC_NUM_INPUTS + DEEPC_NUM_OUTPUTS) {
    std::fprintf(stderr, "usage: csim PARAMS INPUT(%d) OUTPUT(%d)\n", DEEPC_NUM_INPUTS,
                 DEEPC_NUM_OUTPUTS);
    return 2;
  }
  std::vector<float> ddr(DEEPC_ARENA_FLOATS);
  load(argv[1], ddr.data(), DEEPC_PARAMS_FLOATS);
  for (int i = 0; i < DEEPC_NUM_INPUTS; ++i)
    load(argv[2 + i], ddr.data() + deepc_input_offset[i], deepc_input_floats[i]);
  deepc_top(ddr.data());
  for (int i = 0; i < DEEPC_NUM_OUTPUTS; ++i) {
    const char *path = argv[2 + DEEPC_NUM_INPUTS + i];
    FILE *f = std::fopen(path, "wb");
    long n = deepc_output_floats[i];
    if (!f || std::fwrite(ddr.data() + deepc_output_offset[i], 4, n, f) != (size_t)n ||
        std::fclose(f) != 0)
      die("cannot write", path);
  }
  return 0;
}

/* fpga_host.c: the processing system's program for a deepc FPGA bundle (Linux on the Zynq).
 *
 *   ./host REGS_PHYS ARENA_PHYS PARAMS INPUT... OUTPUT...
 *
 * REGS_PHYS is the accelerator's AXI-lite register block, ARENA_PHYS a physically contiguous
 * DDR region of DEEPC_ARENA_FLOATS floats reserved for it (e.g. a reserved-memory node or a
 * udmabuf), both mapped through /dev/mem. The tensors are moved into the arena as the HLS
 * testbench moves them, the arena's address goes to the `ddr` register and ap_start starts
 * the accelerator; the outputs are copied out once ap_done is set. Exit: 0 done, 1 failed,
 * 2 bad use.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "deepc_top.h"

/* Vitis HLS s_axilite layout of `deepc_top(float* ddr)` with its block-level control */
#define REG_CTRL 0x00
#define REG_DDR_LO 0x10
#define REG_DDR_HI 0x14
#define AP_START 0x1u
#define AP_DONE 0x2u

static void die(int status, const char *what, const char *arg) {
    fprintf(stderr, "host: %s %s\n", what, arg);
    exit(status);
}

static void *map(int fd, uint64_t phys, size_t bytes, const char *what) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)phys);
    if (p == MAP_FAILED) die(1, "cannot map", what);
    return p;
}

static void move(const char *path, float *at, long floats, int out) {
    FILE *f = fopen(path, out ? "wb" : "rb");
    if (f == NULL) die(2, "cannot open", path);
    size_t n = out ? fwrite(at, 4, (size_t)floats, f) : fread(at, 4, (size_t)floats, f);
    if (n != (size_t)floats || fclose(f) != 0) die(2, "wrong size or I/O error:", path);
}

int main(int argc, char **argv) {
    if (argc != 4 + DEEPC_NUM_INPUTS + DEEPC_NUM_OUTPUTS)
        die(2, "usage: host REGS_PHYS ARENA_PHYS PARAMS INPUT... OUTPUT...", "");
    uint64_t regs_phys = strtoull(argv[1], NULL, 0), arena_phys = strtoull(argv[2], NULL, 0);
    int fd = open("/dev/mem", O_RDWR | O_SYNC);
    if (fd < 0) die(1, "cannot open", "/dev/mem (run as root)");
    volatile uint32_t *regs = map(fd, regs_phys, 0x1000, "the AXI-lite registers");
    float *arena = map(fd, arena_phys, (size_t)DEEPC_ARENA_FLOATS * 4, "the DDR arena");
    move(argv[3], arena, DEEPC_PARAMS_FLOATS, 0);
    for (int i = 0; i < DEEPC_NUM_INPUTS; ++i)
        move(argv[4 + i], arena + deepc_input_offset[i], deepc_input_floats[i], 0);
    regs[REG_DDR_LO / 4] = (uint32_t)arena_phys;
    regs[REG_DDR_HI / 4] = (uint32_t)(arena_phys >> 32);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    regs[REG_CTRL / 4] = AP_START;
    while (!(regs[REG_CTRL / 4] & AP_DONE)) {
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "host: accelerator ran %.3f ms\n",
            (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    for (int i = 0; i < DEEPC_NUM_OUTPUTS; ++i)
        move(argv[4 + DEEPC_NUM_INPUTS + i], arena + deepc_output_offset[i],
             deepc_output_floats[i], 1);
    return 0;
}

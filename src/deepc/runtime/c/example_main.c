/* main.c: runs a model compiled by deepc on raw input files and writes raw output files.
 *
 * Plain C11 + POSIX: on the device it needs only the bundle's lib/model.so, params.bin and
 * include/deepc_model.h — no Python. Build it with the Makefile next to it.
 *
 *   ./run_model [-n RUNS] [-w WARMUP] [-t THREADS] PARAMS INPUT... OUTPUT...
 *   ./run_model -i
 *
 * PARAMS is the bundle's params.bin; then one file per model input and one per output, in the
 * order of deepc_model.h (`-i` lists them). A file holds the tensor's elements in C order and
 * the device's byte order, nothing else (numpy: x.tofile(path) / np.fromfile(path, dtype)).
 * Each of the RUNS timed runs (after WARMUP untimed ones) prints "run K MS ms"; the output
 * files hold the last run's results. Exit status: 0 done, 1 deepc_run failed, 2 bad use.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deepc_model.h"

struct tensor {
    const char *name;
    const char *dtype;
    int rank;
    const long long *shape;
    size_t bytes;
};

/* One row per tensor from its DEEPC_INPUTk_* / DEEPC_OUTPUTk_* macros; the empty last row
 * keeps the arrays valid C for a model without inputs. */
static const struct tensor inputs[DEEPC_NUM_INPUTS + 1] = {
/* @INPUT_ROWS@ */
    {0},
};
static const struct tensor outputs[DEEPC_NUM_OUTPUTS + 1] = {
/* @OUTPUT_ROWS@ */
    {0},
};

static void die(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("run_model: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(2);
}

/* The kernels expect DEEPC_ALIGN-aligned buffers; C11 wants the size a multiple of it. */
static void *alloc_aligned(size_t bytes) {
    size_t size = (bytes + DEEPC_ALIGN - 1) / DEEPC_ALIGN * DEEPC_ALIGN;
    void *p = aligned_alloc(DEEPC_ALIGN, size ? size : DEEPC_ALIGN);
    if (p == NULL) die("out of memory (%zu bytes)", bytes);
    return p;
}

static void *read_file(const char *path, const char *what, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) die("cannot open %s (%s)", path, what);
    if (fseek(f, 0, SEEK_END) != 0) die("cannot seek in %s", path);
    long size = ftell(f);
    if (size < 0 || (unsigned long)size != bytes)
        die("%s holds %ld bytes, %s needs %zu", path, size, what, bytes);
    rewind(f);
    void *data = alloc_aligned(bytes);
    if (fread(data, 1, bytes, f) != bytes) die("cannot read %s", path);
    fclose(f);
    return data;
}

static void write_file(const char *path, const void *data, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0)
        die("cannot write %s", path);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static long parse_count(const char *text, const char *flag, long least) {
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < least) die("%s takes a number >= %ld", flag, least);
    return v;
}

static void print_tensor(const char *role, int k, const struct tensor *t) {
    printf("%s %d %s %s[", role, k, t->name, t->dtype);
    for (int d = 0; d < t->rank; d++) printf(d ? "x%lld" : "%lld", t->shape[d]);
    printf("] %zu bytes\n", t->bytes);
}

static void print_info(void) {
    printf("model %s for %s (%s)\n", DEEPC_MODEL_NAME, DEEPC_TARGET_NAME, DEEPC_TARGET_TRIPLE);
    for (int k = 0; k < DEEPC_NUM_INPUTS; k++) print_tensor("input", k, &inputs[k]);
    for (int k = 0; k < DEEPC_NUM_OUTPUTS; k++) print_tensor("output", k, &outputs[k]);
    printf("threads %d\n", (int)deepc_get_num_threads());
}

static void usage(FILE *to) {
    fprintf(to, "usage: run_model [-n RUNS] [-w WARMUP] [-t THREADS] params.bin");
    for (int k = 0; k < DEEPC_NUM_INPUTS; k++) fprintf(to, " %s.bin", inputs[k].name);
    for (int k = 0; k < DEEPC_NUM_OUTPUTS; k++) fprintf(to, " %s.bin", outputs[k].name);
    fprintf(to, "\n       run_model -i    (the model's inputs, outputs and threads)\n");
}

int main(int argc, char **argv) {
    long runs = 1, warmup = 0, threads = 0;
    int info = 0, opt;
    while ((opt = getopt(argc, argv, "n:w:t:ih")) != -1) {
        switch (opt) {
        case 'n': runs = parse_count(optarg, "-n", 1); break;
        case 'w': warmup = parse_count(optarg, "-w", 0); break;
        case 't': threads = parse_count(optarg, "-t", 0); break;
        case 'i': info = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (threads > 0) deepc_set_num_threads((int32_t)threads);
    if (info) {
        print_info();
        return 0;
    }
    if (argc - optind != 1 + DEEPC_NUM_INPUTS + DEEPC_NUM_OUTPUTS) {
        usage(stderr);
        return 2;
    }
    char **files = argv + optind;
    void *params = read_file(files[0], "params.bin", DEEPC_PARAMS_BYTES);
    void *workspace = alloc_aligned(DEEPC_WORKSPACE_BYTES);
    void *in[DEEPC_NUM_INPUTS + 1] = {0}, *out[DEEPC_NUM_OUTPUTS + 1] = {0};
    for (int k = 0; k < DEEPC_NUM_INPUTS; k++)
        in[k] = read_file(files[1 + k], inputs[k].name, inputs[k].bytes);
    for (int k = 0; k < DEEPC_NUM_OUTPUTS; k++) out[k] = alloc_aligned(outputs[k].bytes);

    for (long r = -warmup; r < runs; r++) {
        double start = now_ms();
        int32_t rc = deepc_run(in, out, params, workspace);
        double ms = now_ms() - start;
        if (rc != 0) {
            fprintf(stderr, "run_model: deepc_run returned %d\n", (int)rc);
            return 1;
        }
        if (r >= 0) printf("run %ld %.6f ms\n", r + 1, ms);
    }
    for (int k = 0; k < DEEPC_NUM_OUTPUTS; k++)
        write_file(files[1 + DEEPC_NUM_INPUTS + k], out[k], outputs[k].bytes);

    for (int k = 0; k < DEEPC_NUM_INPUTS; k++) free(in[k]);
    for (int k = 0; k < DEEPC_NUM_OUTPUTS; k++) free(out[k]);
    free(workspace);
    free(params);
    return 0;
}

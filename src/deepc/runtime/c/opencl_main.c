/* main.c: runs an OpenCL bundle compiled by deepc on raw input files, writes raw outputs.
 *
 * Plain C11 against the standard OpenCL headers and ICD loader (Debian: opencl-headers,
 * ocl-icd-opencl-dev; a driver such as pocl-opencl-icd or the GPU vendor's ICD) — no Python.
 *
 *   ./run_model [-n RUNS] [-w WARMUP] [-d cpu|gpu|accelerator|all] BUNDLE INPUT... OUTPUT...
 *
 * BUNDLE is the unpacked bundle's directory: params.bin, lib/kernels.cl and lib/plan.txt (the
 * arena size, where params, inputs and outputs lie in it, and the launches in order, each
 * with its work-group counts and sizes and its arguments as byte offsets into the arena).
 * Then one file per model input and one per output, in the manifest's order; a file holds the
 * tensor's elements in C order, nothing else (numpy: x.tofile(path) / np.fromfile(path)).
 * -d (else $DEEPC_OPENCL_DEVICE, else the plan's) picks the first device of that type.
 * Each of the RUNS timed runs prints "run K MS ms". Exit: 0 done, 1 OpenCL failed, 2 bad use.
 */
#define _POSIX_C_SOURCE 200809L
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_TENSORS 64

struct launch {
    char func[128];
    size_t global[3], local[3];
    int nargs;
    cl_ulong *args;
};

struct plan {
    size_t arena, params_offset, params_bytes;
    int ninputs, noutputs, nlaunches;
    size_t in_offset[MAX_TENSORS], in_bytes[MAX_TENSORS];
    size_t out_offset[MAX_TENSORS], out_bytes[MAX_TENSORS];
    char device[32];
    struct launch *launches;
};

static void fail(int code, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("run_model: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(code);
}

static void check(cl_int status, const char *what) {
    if (status != CL_SUCCESS) fail(1, "%s failed (OpenCL error %d)", what, (int)status);
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail(2, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)n + 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) fail(2, "cannot read %s", path);
    data[n] = 0;
    fclose(f);
    if (size) *size = (size_t)n;
    return data;
}

static void read_plan(const char *path, struct plan *p) {
    FILE *f = fopen(path, "r");
    if (f == NULL) fail(2, "cannot open %s", path);
    char word[32];
    int capacity = 0;
    memset(p, 0, sizeof *p);
    strcpy(p->device, "all");
    while (fscanf(f, "%31s", word) == 1) {
        if (strcmp(word, "arena") == 0) {
            if (fscanf(f, "%zu", &p->arena) != 1) break;
        } else if (strcmp(word, "device") == 0) {
            if (fscanf(f, "%31s", p->device) != 1) break;
        } else if (strcmp(word, "params") == 0) {
            if (fscanf(f, "%zu %zu", &p->params_offset, &p->params_bytes) != 2) break;
        } else if (strcmp(word, "input") == 0 && p->ninputs < MAX_TENSORS) {
            if (fscanf(f, "%zu %zu", &p->in_offset[p->ninputs], &p->in_bytes[p->ninputs]) != 2) break;
            p->ninputs++;
        } else if (strcmp(word, "output") == 0 && p->noutputs < MAX_TENSORS) {
            if (fscanf(f, "%zu %zu", &p->out_offset[p->noutputs], &p->out_bytes[p->noutputs]) != 2) break;
            p->noutputs++;
        } else if (strcmp(word, "launch") == 0) {
            if (p->nlaunches == capacity) {
                capacity = capacity ? 2 * capacity : 64;
                p->launches = realloc(p->launches, (size_t)capacity * sizeof *p->launches);
                if (p->launches == NULL) fail(1, "out of memory");
            }
            struct launch *l = &p->launches[p->nlaunches++];
            size_t grid[3];
            if (fscanf(f, "%127s %zu %zu %zu %zu %zu %zu %d", l->func, &grid[0], &grid[1], &grid[2],
                       &l->local[0], &l->local[1], &l->local[2], &l->nargs) != 8) break;
            l->args = calloc((size_t)l->nargs + 1, sizeof *l->args);
            for (int k = 0; k < 3; ++k) l->global[k] = grid[k] * l->local[k];
            for (int k = 0; k < l->nargs; ++k)
                if (fscanf(f, "%llu", (unsigned long long *)&l->args[k]) != 1) fail(2, "bad plan %s", path);
        } else {
            fail(2, "%s: unknown plan entry '%s'", path, word);
        }
    }
    if (!feof(f)) fail(2, "%s: malformed plan", path);
    fclose(f);
}

static cl_device_type device_type(const char *name) {
    if (strcmp(name, "cpu") == 0) return CL_DEVICE_TYPE_CPU;
    if (strcmp(name, "gpu") == 0) return CL_DEVICE_TYPE_GPU;
    if (strcmp(name, "accelerator") == 0) return CL_DEVICE_TYPE_ACCELERATOR;
    if (strcmp(name, "all") == 0) return CL_DEVICE_TYPE_ALL;
    fail(2, "unknown device type '%s' (cpu, gpu, accelerator or all)", name);
    return 0;
}

static cl_device_id pick_device(const char *type) {
    cl_platform_id platforms[16];
    cl_uint count = 0;
    if (clGetPlatformIDs(16, platforms, &count) != CL_SUCCESS || count == 0)
        fail(1, "no OpenCL platform: install an OpenCL driver (Debian: pocl-opencl-icd for"
                " the CPU, or the GPU vendor's ICD)");
    for (cl_uint k = 0; k < count; ++k) {
        cl_device_id device;
        cl_uint n = 0;
        if (clGetDeviceIDs(platforms[k], device_type(type), 1, &device, &n) == CL_SUCCESS && n)
            return device;
    }
    fail(1, "no OpenCL %s device on the %u platform(s) found: choose another with -d", type,
         count);
    return NULL;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    int runs = 1, warmup = 0, opt;
    const char *device_name = getenv("DEEPC_OPENCL_DEVICE");
    while ((opt = getopt(argc, argv, "n:w:d:")) != -1) {
        if (opt == 'n') runs = atoi(optarg);
        else if (opt == 'w') warmup = atoi(optarg);
        else if (opt == 'd') device_name = optarg;
        else fail(2, "usage: run_model [-n RUNS] [-w WARMUP] [-d TYPE] BUNDLE INPUT... OUTPUT...");
    }
    if (optind >= argc) fail(2, "usage: run_model [-n RUNS] [-w WARMUP] [-d TYPE] BUNDLE INPUT... OUTPUT...");
    const char *root = argv[optind++];
    char path[4096];
    struct plan plan;
    snprintf(path, sizeof path, "%s/lib/plan.txt", root);
    read_plan(path, &plan);
    if (argc - optind != plan.ninputs + plan.noutputs)
        fail(2, "the model takes %d input file(s) and %d output file(s), %d given", plan.ninputs,
             plan.noutputs, argc - optind);

    cl_int status;
    cl_device_id device = pick_device(device_name && *device_name ? device_name : plan.device);
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &status);
    check(status, "clCreateContext");
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &status);
    check(status, "clCreateCommandQueue");
    snprintf(path, sizeof path, "%s/lib/kernels.cl", root);
    size_t source_size;
    const char *source = read_file(path, &source_size);
    cl_program program = clCreateProgramWithSource(context, 1, &source, &source_size, &status);
    check(status, "clCreateProgramWithSource");
    if (clBuildProgram(program, 1, &device, "", NULL, NULL) != CL_SUCCESS) {
        char log[4096] = "";
        clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        fail(1, "building lib/kernels.cl failed: %s", strtok(log, "\n") ? log : "(no log)");
    }

    cl_mem arena = clCreateBuffer(context, CL_MEM_READ_WRITE, plan.arena ? plan.arena : 1, NULL,
                                  &status);
    check(status, "clCreateBuffer (arena)");
    snprintf(path, sizeof path, "%s/params.bin", root);
    size_t params_size;
    char *params = read_file(path, &params_size);
    if (params_size)
        check(clEnqueueWriteBuffer(queue, arena, CL_TRUE, plan.params_offset, params_size, params,
                                   0, NULL, NULL), "uploading params.bin");
    for (int k = 0; k < plan.ninputs; ++k) {
        size_t size;
        char *data = read_file(argv[optind + k], &size);
        if (size != plan.in_bytes[k])
            fail(2, "%s holds %zu bytes, input %d takes %zu", argv[optind + k], size, k,
                 plan.in_bytes[k]);
        check(clEnqueueWriteBuffer(queue, arena, CL_TRUE, plan.in_offset[k], size, data, 0, NULL,
                                   NULL), "uploading an input");
        free(data);
    }

    cl_kernel *kernels = calloc((size_t)plan.nlaunches + 1, sizeof *kernels);
    for (int k = 0; k < plan.nlaunches; ++k) {
        struct launch *l = &plan.launches[k];
        kernels[k] = clCreateKernel(program, l->func, &status);
        check(status, l->func);
        check(clSetKernelArg(kernels[k], 0, sizeof arena, &arena), "clSetKernelArg");
        for (int a = 0; a < l->nargs; ++a)
            check(clSetKernelArg(kernels[k], (cl_uint)a + 1, sizeof(cl_ulong), &l->args[a]),
                  "clSetKernelArg");
    }
    for (int r = -warmup; r < runs; ++r) {
        double start = now_ms();
        for (int k = 0; k < plan.nlaunches; ++k)
            check(clEnqueueNDRangeKernel(queue, kernels[k], 3, NULL, plan.launches[k].global,
                                         plan.launches[k].local, 0, NULL, NULL),
                  plan.launches[k].func);
        check(clFinish(queue), "running the kernels");
        if (r >= 0) printf("run %d %.3f ms\n", r, now_ms() - start);
    }
    for (int k = 0; k < plan.noutputs; ++k) {
        char *data = malloc(plan.out_bytes[k] + 1);
        check(clEnqueueReadBuffer(queue, arena, CL_TRUE, plan.out_offset[k], plan.out_bytes[k], data,
                                  0, NULL, NULL), "downloading an output");
        const char *out = argv[optind + plan.ninputs + k];
        FILE *f = fopen(out, "wb");
        if (f == NULL || fwrite(data, 1, plan.out_bytes[k], f) != plan.out_bytes[k])
            fail(2, "cannot write %s", out);
        fclose(f);
        free(data);
    }
    return 0;
}

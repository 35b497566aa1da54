/* fake_model.c: a hand-written stand-in for deepc's generated code, with the deepc_run ABI.
 * inputs:  x float32[X_SIZE]
 * outputs: y float32[X_SIZE] = x * scale + bias (through the workspace), total float64[] = sum(y)
 * params:  scale float32 at offset 0, bias float32 at offset 64
 * Returns 7 when params or workspace are not 64-byte aligned, 5 when x[0] == -12345. */
#include "deepc_runtime.h"

#include <stdint.h>

#ifndef X_SIZE
#define X_SIZE 1000
#endif

typedef struct {
    const float *x;
    float *scratch;
    float scale;
} scale_ctx;

typedef struct {
    const float *scratch;
    float *y;
    float bias;
} bias_ctx;

static void scale_task(void *ctx, int64_t begin, int64_t end) {
    scale_ctx *c = (scale_ctx *)ctx;
    for (int64_t i = begin; i < end; i++) c->scratch[i] = c->x[i] * c->scale;
}

static void bias_task(void *ctx, int64_t begin, int64_t end) {
    bias_ctx *c = (bias_ctx *)ctx;
    for (int64_t i = begin; i < end; i++) c->y[i] = c->scratch[i] + c->bias;
}

int32_t deepc_run(void *const *inputs, void *const *outputs, const void *params, void *workspace) {
    if ((uintptr_t)params % 64 != 0 || (uintptr_t)workspace % 64 != 0) return 7;
    const float *x = (const float *)inputs[0];
    if (x[0] == -12345.0f) return 5;
    const float *p = (const float *)params;
    scale_ctx s = {x, (float *)workspace, p[0]};
    deepc_parallel_for(scale_task, &s, X_SIZE);
    bias_ctx b = {(const float *)workspace, (float *)outputs[0], p[16]};
    deepc_parallel_for(bias_task, &b, X_SIZE);
    double total = 0.0;
    for (int64_t i = 0; i < X_SIZE; i++) total += b.y[i];
    *(double *)outputs[1] = total;
    return 0;
}

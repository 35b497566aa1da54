/* record.c: parallel_for callbacks for the ctypes tests. `record` counts visits per index;
 * `record_nested` runs a nested parallel_for per outer index over a row of 100 counters. */
#include "deepc_runtime.h"

#include <stdatomic.h>
#include <stdint.h>

void record(void *ctx, int64_t begin, int64_t end) {
    atomic_int *counts = (atomic_int *)ctx;
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&counts[i], 1);
}

void record_nested(void *ctx, int64_t begin, int64_t end) {
    atomic_int *counts = (atomic_int *)ctx;
    for (int64_t i = begin; i < end; i++) deepc_parallel_for(record, counts + 100 * i, 100);
}

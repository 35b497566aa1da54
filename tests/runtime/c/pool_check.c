/* pool_check.c: checks deepc_parallel_for (every index once, chunking, nesting, thread counts,
 * fork; "nofork" skips that) and, with "bench [max threads]", times dispatch overhead.
 * Exit status 0 = passed. */
#define _GNU_SOURCE
#include "deepc_runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_N 100003
#define MAX_CHUNKS 64

static int failures;
#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            failures++;                                   \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                 \
            fputc('\n', stderr);                          \
        }                                                 \
    } while (0)

typedef struct {
    atomic_int visits[MAX_N];
    atomic_int calls;
    int64_t begins[MAX_CHUNKS], ends[MAX_CHUNKS];
    pthread_t caller;
    atomic_int caller_ran_first_chunk;
} visit_ctx;

static visit_ctx V;

static void visit(void *ctx, int64_t begin, int64_t end) {
    visit_ctx *v = (visit_ctx *)ctx;
    int k = atomic_fetch_add(&v->calls, 1);
    if (k < MAX_CHUNKS) {
        v->begins[k] = begin;
        v->ends[k] = end;
    }
    if (begin == 0 && pthread_equal(pthread_self(), v->caller)) atomic_store(&v->caller_ran_first_chunk, 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&v->visits[i], 1);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void check_visits(int64_t n, int32_t threads) {
    memset(&V, 0, sizeof(V));
    V.caller = pthread_self();
    deepc_parallel_for(visit, &V, n);
    for (int64_t i = 0; i < n; i++) CHECK(V.visits[i] == 1, "n=%lld index %lld visited %d times", (long long)n, (long long)i, V.visits[i]);
    if (n <= 0) {
        CHECK(V.calls == 0, "n=%lld: %d calls", (long long)n, V.calls);
        return;
    }
    /* each share (one per thread, sizes differing by at most one) is cut into at most four
     * blocks, one call each */
    int64_t shares = n < threads ? n : threads;
    CHECK(V.calls >= shares && V.calls <= 4 * shares, "n=%lld threads=%d: %d calls", (long long)n, threads, V.calls);
    if (V.calls > MAX_CHUNKS) return;
    /* the blocks tile [0, n) and none crosses a share's boundary */
    int64_t begins[MAX_CHUNKS], ends[MAX_CHUNKS];
    memcpy(begins, V.begins, sizeof(begins));
    qsort(begins, (size_t)V.calls, sizeof(int64_t), cmp_i64);
    for (int k = 0; k < V.calls; k++)
        for (int j = 0; j < V.calls; j++)
            if (V.begins[j] == begins[k]) ends[k] = V.ends[j];
    int64_t q = n / shares, r = n % shares;
    for (int k = 0; k < V.calls; k++) {
        CHECK(ends[k] > begins[k], "n=%lld: empty block", (long long)n);
        CHECK(k + 1 == V.calls || ends[k] == begins[k + 1], "n=%lld: blocks leave a gap", (long long)n);
        int64_t share = begins[k] < r * (q + 1) ? begins[k] / (q + 1) : r + (begins[k] - r * (q + 1)) / q;
        int64_t share_end = (share + 1) * q + (share + 1 < r ? share + 1 : r);
        CHECK(ends[k] <= share_end, "n=%lld: block [%lld, %lld) crosses a share", (long long)n, (long long)begins[k], (long long)ends[k]);
    }
    CHECK(begins[0] == 0 && ends[V.calls - 1] == n, "n=%lld: blocks do not cover the range", (long long)n);
}

typedef struct {
    atomic_int inner_visits[3][100];
    atomic_int inner_calls[3];
} nested_ctx;

typedef struct {
    nested_ctx *outer;
    int64_t row;
} inner_arg;

static void inner_task(void *ctx, int64_t begin, int64_t end) {
    inner_arg *a = (inner_arg *)ctx;
    atomic_fetch_add(&a->outer->inner_calls[a->row], 1);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&a->outer->inner_visits[a->row][i], 1);
}

static void outer_task(void *ctx, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
        inner_arg a = {(nested_ctx *)ctx, row};
        deepc_parallel_for(inner_task, &a, 100);
    }
}

static void check_nested(void) {
    static nested_ctx c;
    memset(&c, 0, sizeof(c));
    deepc_parallel_for(outer_task, &c, 3);
    for (int r = 0; r < 3; r++) {
        CHECK(c.inner_calls[r] == 1, "nested row %d: inner ran in %d chunks, expected 1 (serial)", r, c.inner_calls[r]);
        for (int i = 0; i < 100; i++) CHECK(c.inner_visits[r][i] == 1, "nested row %d index %d visited %d times", r, i, c.inner_visits[r][i]);
    }
}

static void check_fork(void) {
    pid_t pid = fork();
    if (pid == 0) {
        failures = 0;
        check_visits(1000, deepc_get_num_threads());
        deepc_shutdown(); /* _exit skips the library destructor that would join the workers */
        _exit(failures == 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "parallel_for in a forked child failed");
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* each chunk busy-waits `work_us`; counts the chunks a worker (not the caller) ran */
typedef struct {
    double work_us;
    pthread_t caller;
    atomic_int by_worker;
} bench_ctx;

static void bench_task(void *ctx, int64_t begin, int64_t end) {
    bench_ctx *b = (bench_ctx *)ctx;
    (void)begin;
    (void)end;
    if (!pthread_equal(pthread_self(), b->caller)) atomic_fetch_add(&b->by_worker, 1);
    double until = now_us() + b->work_us;
    while (b->work_us > 0 && now_us() < until) {
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median microseconds of one parallel_for with one chunk of `work_us` per thread, over
 * `rounds` rounds of `calls` calls (after `gap_us` of idling); prints it with the number of
 * chunks workers (not the caller) ran. The overhead is the time beyond work_us, the ideal. */
static void bench(int32_t threads, double work_us, int rounds, int calls, int gap_us) {
    bench_ctx b = {work_us, pthread_self(), 0};
    deepc_set_num_threads(threads);
    deepc_parallel_for(bench_task, &b, 1000); /* start the pool */
    atomic_store(&b.by_worker, 0);
    double *t = malloc(sizeof(double) * (size_t)rounds);
    for (int r = 0; r < rounds; r++) {
        if (gap_us) usleep((useconds_t)gap_us);
        double t0 = now_us();
        for (int k = 0; k < calls; k++) deepc_parallel_for(bench_task, &b, threads);
        t[r] = (now_us() - t0) / calls;
    }
    qsort(t, (size_t)rounds, sizeof(double), cmp_double);
    printf("threads=%-2d work=%4.1f us/chunk%s: %7.3f us per call (overhead %6.3f us),"
           " workers ran %d of %d other chunks\n", threads, work_us,
           gap_us ? " after 2 ms idle" : "", t[rounds / 2], t[rounds / 2] - work_us,
           atomic_load(&b.by_worker), rounds * calls * (threads - 1));
    free(t);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        int32_t most = argc > 2 ? atoi(argv[2]) : 2;
        const double work[] = {0.0, 1.0, 5.0, 20.0};
        for (int32_t threads = 1; threads <= most; threads *= 2) {
            for (size_t w = 0; w < sizeof(work) / sizeof(*work); w++)
                bench(threads, work[w], 101, 200, 0);
            /* workers asleep: 2 ms idle is longer than the 100 us spin */
            if (threads > 1) bench(threads, 5.0, 201, 1, 2000);
        }
        return 0;
    }
    int32_t cores = (deepc_set_num_threads(0), deepc_get_num_threads());
    CHECK(cores >= 1, "all cores reads %d", cores);
    const int64_t sizes[] = {0, 1, 2, 3, 5, 7, 64, 1000, MAX_N};
    const int32_t thread_counts[] = {1, 2, 3, 4, 8};
    for (size_t t = 0; t < sizeof(thread_counts) / sizeof(*thread_counts); t++) {
        deepc_set_num_threads(thread_counts[t]);
        CHECK(deepc_get_num_threads() == thread_counts[t], "set %d threads, get reads %d", thread_counts[t], deepc_get_num_threads());
        for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) check_visits(sizes[s], thread_counts[t]);
        check_nested();
    }
    /* many back-to-back small jobs exercise the handshake (and, with DEEPC_SPIN_US=0, sleep) */
    deepc_set_num_threads(4);
    for (int k = 0; k < 3000; k++) check_visits(k % 9, 4);
    /* qemu-user 7.2 aborts in a child forked from a threaded process: skip it there */
    if (!(argc > 1 && strcmp(argv[1], "nofork") == 0)) check_fork();
    deepc_shutdown();
    check_visits(1000, 4); /* restarts after a shutdown */
    if (failures == 0) printf("pool ok (%d cores)\n", cores);
    return failures == 0 ? 0 : 1;
}

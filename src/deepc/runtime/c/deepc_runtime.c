/* deepc_runtime.c: a low-latency pthread pool for deepc_parallel_for, plus aligned memory.
 *
 * Design (kernels may be a few microseconds long, so dispatch must cost far less):
 *  - Workers start lazily on the first parallel_for that can use them and stay alive.
 *  - Each worker owns a cache line with a job counter. The caller writes the job (fn, ctx, n,
 *    chunk count), then bumps the counter of every worker that gets a chunk; workers spin on
 *    their own line, so a dispatch touches only the lines of the threads it uses.
 *  - A chunk belongs to whoever claims it first: its worker, or the caller once chunk 0 is
 *    done. A worker that is asleep, or descheduled on a busy machine, then costs the caller
 *    its chunk's time instead of a wake-up latency (tens to hundreds of microseconds).
 *  - After spinning for a short while (DEEPC_SPIN_US, default 100 us; none when there are more
 *    threads than cores) a worker sleeps on its condition variable; the caller signals it only
 *    when the worker said it sleeps. The caller waits for claimed chunks the same way.
 *  - The "announce, then re-check" handshakes (counter/sleeping, pending/caller_sleeping) rely
 *    on sequentially consistent atomics: of two threads that each store one flag and then load
 *    the other's, at least one sees the other's store, so no wake-up is lost.
 */
#define _GNU_SOURCE /* sched_getaffinity; also exposes POSIX when built with -std=c11 */

#include "deepc_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 512
#define CACHE_LINE 128 /* two 64-byte lines: adjacent-line prefetchers pair them up */
#define DEFAULT_SPIN_US 100

typedef struct {
    /* jobs handed to this worker so far (atomic signed arithmetic wraps, per C11 7.17.7.5) */
    _Alignas(CACHE_LINE) atomic_int assigned;
    atomic_int claim;    /* 1 while this worker's chunk of the current job is unclaimed */
    atomic_int sleeping; /* set while blocked (or about to block) */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int32_t index; /* the chunk this worker runs: 1 .. nworkers */
} worker_t;

static struct {
    /* the current job: written by the caller before any worker's counter is bumped */
    deepc_task_fn fn;
    void *ctx;
    int64_t n;
    int32_t nchunks;

    _Alignas(CACHE_LINE) atomic_int pending; /* chunks 1.. of the current job not finished */
    atomic_int caller_sleeping;
    atomic_int stop;

    pthread_mutex_t done_lock;
    pthread_cond_t done;
    pthread_mutex_t busy; /* held by the one thread dispatching on the pool */

    worker_t *workers;
    int32_t nworkers;     /* threads actually started (the caller is thread 0) */
    int32_t built_for;    /* the thread count the running pool was built for; 0: not running */
    atomic_int requested; /* the thread count parallel_for should use; 0: not resolved yet */
    int64_t spin_ns;
} P = {
    .done_lock = PTHREAD_MUTEX_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .busy = PTHREAD_MUTEX_INITIALIZER,
};

/* Set on worker threads, and on the caller while it runs chunk 0: nested calls run serially. */
static _Thread_local int tls_in_task;

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until *word == value (until_equal) or != value (otherwise); 0 when the time is up. */
static int spin_wait(atomic_int *word, int value, int until_equal, int64_t spin_ns) {
    int64_t deadline = 0;
    for (uint32_t i = 0;; i++) {
        if ((atomic_load(word) == value) == until_equal) return 1;
        if ((i & 63) == 0) {
            int64_t t = now_ns();
            if (deadline == 0) deadline = t + spin_ns;
            else if (t >= deadline) return 0;
        }
        cpu_relax();
    }
}

/* The integer in environment variable `name`, clamped to [lo, hi]; `fallback` if unset or bad. */
static long env_long(const char *name, long fallback, long lo, long hi) {
    const char *text = getenv(name);
    if (text == NULL || *text == '\0') return fallback;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < lo) return fallback;
    return v > hi ? hi : v;
}

static int32_t available_cores(void) {
#ifdef __linux__
    /* the affinity mask respects taskset and cpusets, which the online count does not */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int c = CPU_COUNT(&set);
        if (c > 0) return c > MAX_THREADS ? MAX_THREADS : c;
    }
#endif
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) return 1;
    return c > MAX_THREADS ? MAX_THREADS : (int32_t)c;
}

static int32_t requested_threads(void) {
    int32_t n = atomic_load(&P.requested);
    if (n == 0) {
        n = (int32_t)env_long("DEEPC_NUM_THREADS", 0, 1, MAX_THREADS);
        if (n == 0) n = available_cores();
        atomic_store(&P.requested, n);
    }
    return n;
}

static void chunk_bounds(int64_t n, int32_t nchunks, int32_t i, int64_t *begin, int64_t *end) {
    int64_t q = n / nchunks, r = n % nchunks;
    *begin = i * q + (i < r ? i : r);
    *end = *begin + q + (i < r ? 1 : 0);
}

/* Runs chunk i of the current job; the job stays put until pending drops to zero. */
static void run_chunk(int32_t i) {
    int64_t begin, end;
    chunk_bounds(P.n, P.nchunks, i, &begin, &end);
    P.fn(P.ctx, begin, end);
}

static void *worker_main(void *arg) {
    worker_t *w = (worker_t *)arg;
    int seen = 0;
    tls_in_task = 1;
    for (;;) {
        if (!spin_wait(&w->assigned, seen, 0, P.spin_ns)) {
            pthread_mutex_lock(&w->lock);
            atomic_store(&w->sleeping, 1);
            while (atomic_load(&w->assigned) == seen) pthread_cond_wait(&w->wake, &w->lock);
            atomic_store(&w->sleeping, 0);
            pthread_mutex_unlock(&w->lock);
        }
        seen = atomic_load(&w->assigned);
        if (atomic_load(&P.stop)) return NULL;
        /* a claim that succeeds is always for the job now published (the caller publishes the
         * next one only after this chunk finishes), even if `seen` lags behind */
        if (!atomic_exchange(&w->claim, 0)) continue;
        run_chunk(w->index);
        if (atomic_fetch_sub(&P.pending, 1) == 1 && atomic_load(&P.caller_sleeping)) {
            pthread_mutex_lock(&P.done_lock);
            pthread_cond_signal(&P.done);
            pthread_mutex_unlock(&P.done_lock);
        }
    }
}

static void notify(worker_t *w, int claim) {
    atomic_store(&w->claim, claim);
    atomic_fetch_add(&w->assigned, 1);
    if (atomic_load(&w->sleeping)) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
}

/* A forked child has none of the parent's worker threads: forget them. */
static void reset_after_fork(void) {
    free(P.workers); /* the threads are gone, so their mutexes are never used again */
    P.workers = NULL;
    P.nworkers = 0;
    P.built_for = 0;
    atomic_store(&P.stop, 0);
    atomic_store(&P.pending, 0);
    atomic_store(&P.caller_sleeping, 0);
    pthread_mutex_init(&P.done_lock, NULL);
    pthread_cond_init(&P.done, NULL);
    pthread_mutex_init(&P.busy, NULL);
    tls_in_task = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, reset_after_fork); }

/* Stops the workers; the caller holds P.busy. */
static void stop_pool(void) {
    if (P.built_for == 0) return;
    atomic_store(&P.stop, 1);
    for (int32_t i = 0; i < P.nworkers; i++) notify(&P.workers[i], 0);
    for (int32_t i = 0; i < P.nworkers; i++) {
        pthread_join(P.workers[i].thread, NULL);
        pthread_mutex_destroy(&P.workers[i].lock);
        pthread_cond_destroy(&P.workers[i].wake);
    }
    free(P.workers);
    P.workers = NULL;
    P.nworkers = 0;
    P.built_for = 0;
    atomic_store(&P.stop, 0);
}

/* Starts threads-1 workers; the caller holds P.busy. Fewer start if the system refuses. */
static void start_pool(int32_t threads) {
    pthread_once(&atfork_once, register_atfork);
    /* spinning threads beyond the core count would only take time from the ones working */
    long spin_us = threads > available_cores() ? 0 : DEFAULT_SPIN_US;
    P.spin_ns = (int64_t)env_long("DEEPC_SPIN_US", spin_us, 0, 1000000) * 1000;
    P.built_for = threads;
    P.workers = (worker_t *)deepc_aligned_alloc(sizeof(worker_t) * (size_t)(threads - 1),
                                                CACHE_LINE);
    if (P.workers == NULL) return;
    for (int32_t i = 0; i < threads - 1; i++) {
        worker_t *w = &P.workers[i];
        atomic_init(&w->assigned, 0);
        atomic_init(&w->claim, 0);
        atomic_init(&w->sleeping, 0);
        w->index = i + 1;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_destroy(&w->lock);
            pthread_cond_destroy(&w->wake);
            break;
        }
        P.nworkers = i + 1;
    }
}

static void wait_for_workers(void) {
    if (spin_wait(&P.pending, 0, 1, P.spin_ns)) return;
    pthread_mutex_lock(&P.done_lock);
    atomic_store(&P.caller_sleeping, 1);
    while (atomic_load(&P.pending) != 0) pthread_cond_wait(&P.done, &P.done_lock);
    atomic_store(&P.caller_sleeping, 0);
    pthread_mutex_unlock(&P.done_lock);
}

void deepc_parallel_for(deepc_task_fn fn, void *ctx, int64_t n) {
    if (n <= 0) return;
    int32_t requested = requested_threads();
    if (n == 1 || tls_in_task || requested == 1 || pthread_mutex_trylock(&P.busy) != 0) {
        fn(ctx, 0, n);
        return;
    }
    if (P.built_for != requested) {
        stop_pool();
        start_pool(requested);
    }
    int64_t threads = (int64_t)P.nworkers + 1;
    int32_t nchunks = (int32_t)(n < threads ? n : threads);
    if (nchunks == 1) {
        pthread_mutex_unlock(&P.busy);
        fn(ctx, 0, n);
        return;
    }
    P.fn = fn;
    P.ctx = ctx;
    P.n = n;
    P.nchunks = nchunks;
    atomic_store(&P.pending, nchunks - 1);
    for (int32_t i = 1; i < nchunks; i++) notify(&P.workers[i - 1], 1);
    tls_in_task = 1;
    run_chunk(0);
    for (int32_t i = 1; i < nchunks; i++) {
        atomic_int *claim = &P.workers[i - 1].claim;
        if (atomic_load(claim) && atomic_exchange(claim, 0)) {
            run_chunk(i);
            atomic_fetch_sub(&P.pending, 1);
        }
    }
    tls_in_task = 0;
    wait_for_workers();
    pthread_mutex_unlock(&P.busy);
}

void deepc_set_num_threads(int32_t n) {
    if (n <= 0) n = available_cores();
    atomic_store(&P.requested, n > MAX_THREADS ? MAX_THREADS : n);
    /* inside a task the pool is in use: the next top-level call rebuilds it */
    if (tls_in_task) return;
    pthread_mutex_lock(&P.busy);
    if (P.built_for != atomic_load(&P.requested)) stop_pool();
    pthread_mutex_unlock(&P.busy);
}

int32_t deepc_get_num_threads(void) { return requested_threads(); }

void deepc_shutdown(void) {
    if (tls_in_task || pthread_mutex_trylock(&P.busy) != 0) return;
    stop_pool();
    pthread_mutex_unlock(&P.busy);
}

#if defined(__GNUC__) || defined(__clang__)
/* joins the workers before the library's code goes away (dlclose, or process exit) */
__attribute__((destructor)) static void deepc_runtime_fini(void) { deepc_shutdown(); }
#endif

void *deepc_aligned_alloc(size_t size, size_t alignment) {
    if (alignment == 0) alignment = 64;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    if ((alignment & (alignment - 1)) != 0) return NULL;
    void *p = NULL;
    if (posix_memalign(&p, alignment, size == 0 ? 1 : size) != 0) return NULL;
    return p;
}

void deepc_aligned_free(void *ptr) { free(ptr); }
